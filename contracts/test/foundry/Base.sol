// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {TestBase, vm} from "./utils/Vm.sol";
import {RewardToken} from "../../src/RewardToken.sol";
import {RoundCoordinator} from "../../src/RoundCoordinator.sol";
import {KeyRegistry} from "../../src/KeyRegistry.sol";
import {ModelRegistry} from "../../src/ModelRegistry.sol";

/// @notice U of `round` as addresses, from the coordinator's bitmap over registration order.
function survivorsOf(RoundCoordinator rc, uint256 taskId, uint32 round) view returns (address[] memory out) {
    uint256[] memory bits = rc.survivorBits(taskId, round);
    address[] memory all = rc.keyRegistry().participants(taskId);
    out = new address[](all.length);
    uint256 n;
    for (uint256 i = 0; i < all.length && bits.length != 0; ++i) {
        if (bits[i >> 8] & (uint256(1) << (i & 255)) != 0) out[n++] = all[i];
    }
    assembly ("memory-safe") {
        mstore(out, n)
    }
}

/// @notice `a`'s status in the task's current round (None if it has not acted in it).
function statusIn(RoundCoordinator rc, uint256 taskId, address a) view returns (RoundCoordinator.Status) {
    RoundCoordinator.Member memory m = rc.memberOf(taskId, a);
    return m.round == rc.taskState(taskId).round ? m.status : RoundCoordinator.Status.None;
}

/// @notice A binary CIDv1 (raw, sha2-256) naming `label`: what the contract accepts.
function cidOf(bytes memory label) pure returns (bytes memory) {
    return abi.encodePacked(bytes4(0x01551220), keccak256(label)); // keccak: an opcode, not a call a prank would take
}

/// @notice Deploys RewardToken + RoundCoordinator, funds the accounts and drives a task.
///         Everything that depends on the coordinator's interface (TaskParams, the arguments
///         of register, shareKeys, commit, reveal, ...) is written here once: when the
///         interface changes, `defaultParams` and the helpers below change, not the tests.
abstract contract CoordinatorBase is TestBase {
    RewardToken internal token;
    RoundCoordinator internal rc;
    KeyRegistry internal keys;
    ModelRegistry internal models;

    address internal owner = address(0x0A11CE);
    address internal aggregator = address(0x0A66);
    address internal stranger = address(0x0BAD);
    address[] internal members; // N funded accounts that may register

    uint256 internal constant N = 6;
    uint256 internal constant FUNDS = 1_000_000 ether; // minted to every account
    bytes internal constant MODEL0 = hex"015512201111111111111111111111111111111111111111111111111111111111111111";

    function setUp() public virtual {
        token = new RewardToken("Reward", "RWD", address(this));
        rc = new RoundCoordinator(token);
        keys = rc.keyRegistry();
        models = rc.modelRegistry();
        for (uint256 i = 0; i < N; ++i) {
            members.push(address(uint160(0x1000 + i)));
        }
        _fund(owner);
        _fund(aggregator);
        _fund(stranger);
        for (uint256 i = 0; i < N; ++i) {
            _fund(members[i]);
        }
    }

    // ------------------------------------------------------------------ pranks and reverts

    bytes private _pendingRevert;
    bool private _hasPendingRevert;

    /// @notice `vm.expectRevert(err)` for the coordinator call inside the next helper: the
    ///         helpers make view calls (and a sha256 precompile call) before it, which a plain
    ///         expectRevert (or prank) would apply to instead.
    function _expectRevert(bytes memory err) internal {
        _pendingRevert = err;
        _hasPendingRevert = true;
    }

    /// @dev Every helper pranks through here, right before its coordinator call.
    function _prank(address who) internal {
        if (_hasPendingRevert) {
            _hasPendingRevert = false;
            vm.expectRevert(_pendingRevert);
        }
        vm.prank(who);
    }

    function _fund(address who) internal {
        token.mint(who, FUNDS);
        vm.prank(who);
        token.approve(address(rc), type(uint256).max);
    }

    // ------------------------------------------------------------------ the one place for TaskParams

    /// @notice A masking task (ShareKeys and Unmask phases) of 3..N participants, threshold 3,
    ///         2 rounds, every phase 10 blocks, a bond.
    function defaultParams() internal view virtual returns (RoundCoordinator.TaskParams memory p) {
        p.protocolId = bytes32("secaggplus");
        p.paramsHash = keccak256("params");
        p.aggregator = aggregator;
        p.minParticipants = 3;
        p.maxParticipants = uint32(N);
        p.threshold = 3;
        p.numRounds = 2;
        p.registrationBlocks = 10;
        p.shareBlocks = 10;
        p.commitBlocks = 10;
        p.revealBlocks = 10;
        p.unmaskBlocks = 10;
        p.finalizeBlocks = 10;
        p.stake = 100 ether;
        p.slashAmount = 40 ether;
        p.rewardPerRound = 30 ether;
        p.rewardPool = 100 ether;
        p.aggregatorBond = 50 ether;
        p.absenceFee = 10 ether;
        p.allowlistRoot = bytes32(0); // anyone may register
    }

    /// @notice The same without ShareKeys and Unmask (an HE task).
    function heParams() internal view returns (RoundCoordinator.TaskParams memory p) {
        p = defaultParams();
        p.protocolId = bytes32("ckks");
        p.shareBlocks = 0;
        p.unmaskBlocks = 0;
    }

    // ------------------------------------------------------------------ owner / aggregator

    function _createTask(RoundCoordinator.TaskParams memory p) internal returns (uint256 taskId) {
        bytes32 digest = sha256(MODEL0); // (a precompile call: before the prank, which it would use)
        _prank(owner);
        taskId = rc.createTask(p, MODEL0, digest);
    }

    function _postBond(uint256 taskId) internal {
        if (rc.taskParams(taskId).aggregatorBond == 0) return;
        _prank(aggregator);
        rc.postBond(taskId);
    }

    /// @notice A task with `n` members registered and its bond posted, in round 1's first phase.
    function _startedTask(RoundCoordinator.TaskParams memory p, uint256 n) internal returns (uint256 taskId) {
        taskId = _createTask(p);
        _postBond(taskId);
        for (uint256 i = 0; i < n; ++i) {
            _register(taskId, members[i]);
        }
        _finishPhase(taskId);
    }

    function _startedTask() internal returns (uint256) {
        return _startedTask(defaultParams(), N);
    }

    /// @notice The aggregator fixes which posted blobs it could not fetch (registration
    ///         indices): share bundles in Commit, revealed inputs in Unmask (HE: Finalize).
    function _declareUnavailable(uint256 taskId, uint32[] memory withheld) internal {
        _prank(aggregator);
        rc.declareUnavailable(taskId, withheld);
    }

    /// @notice Every blob was available (the honest case).
    function _declareNone(uint256 taskId) internal {
        _declareUnavailable(taskId, new uint32[](0));
    }

    /// @notice Declares (none withheld) when the current phase waits for a declaration and it
    ///         has not been made yet.
    function _declareIfDue(uint256 taskId) internal {
        RoundCoordinator.State memory s = rc.taskState(taskId);
        bool shares = s.phase == RoundCoordinator.Phase.Commit && s.hasShareKeys
            && s.availability == RoundCoordinator.Availability.Open;
        bool inputs = (s.phase == RoundCoordinator.Phase.Unmask
                || (s.phase == RoundCoordinator.Phase.Finalize && !s.hasShareKeys))
            && s.availability != RoundCoordinator.Availability.InputsFixed;
        if (shares || inputs) _declareNone(taskId);
    }

    function _finalize(uint256 taskId) internal {
        uint32 round = rc.taskState(taskId).round;
        bytes32 digest = sha256(_modelCid(round));
        _prank(aggregator);
        rc.finalizeRound(taskId, _modelCid(round), digest);
    }

    function _modelCid(uint32 round) internal pure returns (bytes memory) {
        return cidOf(abi.encodePacked("model-", bytes32(uint256(round))));
    }

    // ------------------------------------------------------------------ participants

    function _register(uint256 taskId, address acct) internal {
        bytes32[] memory proof = _proof(taskId, acct);
        _prank(acct);
        rc.register(taskId, _agreementKey(acct), "", proof);
    }

    /// @notice The allowlist proof `_register` sends (none: open tasks). Tests of the allowlist
    ///         set `allowlistProof` first.
    function _proof(uint256, address) internal view virtual returns (bytes32[] memory) {
        return allowlistProof;
    }

    bytes32[] internal allowlistProof;

    function _agreementKey(address acct) internal pure returns (bytes32) {
        return keccak256(abi.encode("agreement", acct));
    }

    function _shareKeys(uint256 taskId, address acct) internal {
        _prank(acct);
        rc.shareKeys(taskId, keccak256(abi.encode("mask", acct)), _bundleCid(acct));
    }

    function _bundleCid(address acct) internal pure returns (bytes memory) {
        return cidOf(abi.encodePacked("bundle-", acct));
    }

    function _inputCid(address acct) internal pure returns (bytes memory) {
        return cidOf(abi.encodePacked("input-", acct));
    }

    function _salt(address acct) internal pure returns (bytes32) {
        return keccak256(abi.encode("salt", acct));
    }

    function _commit(uint256 taskId, address acct) internal {
        uint32 round = rc.taskState(taskId).round;
        bytes32 c = rc.commitmentFor(taskId, round, acct, _inputCid(acct), _salt(acct));
        _prank(acct);
        rc.commit(taskId, c);
    }

    function _reveal(uint256 taskId, address acct) internal {
        _prank(acct);
        rc.reveal(taskId, _inputCid(acct), _salt(acct));
    }

    function _postUnmask(uint256 taskId, address acct) internal {
        _prank(acct);
        rc.postUnmask(taskId, cidOf(abi.encodePacked("unmask-", acct)));
    }

    // ------------------------------------------------------------------ phases

    function _phase(uint256 taskId) internal view returns (RoundCoordinator.Phase) {
        return rc.taskState(taskId).phase;
    }

    /// @notice Rolls past the current phase's deadline and advances.
    function _finishPhase(uint256 taskId) internal {
        vm.roll(uint256(rc.taskState(taskId).deadline) + 1);
        rc.advance(taskId);
    }

    /// @notice Runs the current round: the first `n` registered members share keys and commit,
    ///         those whose bit is set in `revealMask` reveal (and unmask), and the aggregator
    ///         finalizes when `finalize`. Returns with the next round (or the end) open.
    ///         Rounds with fewer than `threshold` shares/reveals fail on the way, as on chain.
    function _runRound(uint256 taskId, uint256 n, uint256 revealMask, bool finalize) internal {
        address[] memory all = keys.participants(taskId);
        uint32 round = rc.taskState(taskId).round;
        if (_phase(taskId) == RoundCoordinator.Phase.ShareKeys) {
            for (uint256 i = 0; i < n; ++i) {
                if (_active(taskId, all[i])) _shareKeys(taskId, all[i]);
            }
            _finishPhase(taskId);
            if (rc.taskState(taskId).round != round || _phase(taskId) != RoundCoordinator.Phase.Commit) return;
        }
        _declareIfDue(taskId); // no bundle withheld
        for (uint256 i = 0; i < n; ++i) {
            if (_active(taskId, all[i])) _commit(taskId, all[i]);
        }
        _finishPhase(taskId); // -> Reveal
        for (uint256 i = 0; i < n; ++i) {
            if (revealMask & (1 << i) != 0 && _active(taskId, all[i])) _reveal(taskId, all[i]);
        }
        _finishPhase(taskId); // -> Unmask / Finalize, or the round failed
        if (rc.taskState(taskId).round != round || _phase(taskId) == RoundCoordinator.Phase.Ended) return;
        _declareIfDue(taskId); // no input withheld (HE tasks: in Finalize)
        if (_phase(taskId) == RoundCoordinator.Phase.Unmask) {
            for (uint256 i = 0; i < n; ++i) {
                if (statusIn(rc, taskId, all[i]) == RoundCoordinator.Status.Revealed) _postUnmask(taskId, all[i]);
            }
            _finishPhase(taskId); // -> Finalize
        }
        if (rc.taskState(taskId).round != round || _phase(taskId) == RoundCoordinator.Phase.Ended) return;
        if (finalize) _finalize(taskId);
        else _finishPhase(taskId); // Finalize times out: the round fails
    }

    /// @notice Registered and not ejected (slashing took its whole stake).
    function _active(uint256 taskId, address acct) internal view returns (bool) {
        RoundCoordinator.Member memory m = rc.memberOf(taskId, acct);
        return m.index != 0 && !m.ejected;
    }

    /// @notice Everyone registered acts honestly and the aggregator finalizes.
    function _runRound(uint256 taskId) internal {
        _runRound(taskId, keys.participantCount(taskId), type(uint256).max, true);
    }

    /// @notice Runs the task to its end, every round honest.
    function _runToEnd(uint256 taskId) internal {
        while (_phase(taskId) != RoundCoordinator.Phase.Ended) _runRound(taskId);
    }

    // ------------------------------------------------------------------ books

    /// @notice What the coordinator owes for a task, by its own views: pool + stakes +
    ///         unclaimed credits + slashed + bond.
    function _owed(uint256 taskId, address[] memory accounts) internal view returns (uint256 sum) {
        sum = rc.poolOf(taskId) + rc.slashedOf(taskId) + rc.bondOf(taskId);
        for (uint256 i = 0; i < accounts.length; ++i) {
            sum += rc.memberOf(taskId, accounts[i]).stake + rc.creditOf(taskId, accounts[i]);
        }
    }
}
