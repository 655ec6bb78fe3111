// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {TestBase, vm} from "./utils/Vm.sol";
import {CoordinatorBase, survivorsOf, statusIn, cidOf} from "./Base.sol";
import {RoundCoordinator} from "../../src/RoundCoordinator.sol";
import {RewardToken} from "../../src/RewardToken.sol";

/// @notice The actions an invariant run takes, each bounded to a state where it makes sense
///         (the fuzzer picks the action and its arguments). The handler drives tasks through
///         the base's helpers, one task at a time (a new one when the last has ended), and
///         keeps ghost books that the invariants compare with the coordinator's.
contract Handler is CoordinatorBase {
    uint256 public taskId;
    uint256[] public tasks;

    // ghost books, per task and member
    mapping(uint256 => mapping(address => uint256)) public ghostEarned; // credited, by the handler's own arithmetic
    mapping(uint256 => mapping(address => uint256)) public ghostClaimed;
    mapping(uint256 => mapping(address => uint256)) public ghostStake; // registered stake less predicted slashes
    mapping(uint256 => mapping(uint32 => mapping(address => bool))) public ghostCommitted;
    mapping(uint256 => uint32[]) public closedRounds; // rounds whose Reveal closed (U fixed)

    // ghost flows of tokens into and out of the coordinator
    uint256 public ghostIn;
    uint256 public ghostOut;

    uint256 public advanceReverts; // an advance past a deadline that reverted (must stay 0)
    bytes public lastAdvanceError;
    uint256 public initialSupply;

    mapping(bytes32 => uint256) public calls;

    constructor() {
        setUp();
        initialSupply = token.totalSupply();
        _newTask(uint256(keccak256("first task")));
    }

    function coordinator() external view returns (RoundCoordinator) {
        return rc;
    }

    function rewardToken() external view returns (RewardToken) {
        return token;
    }

    function allMembers() external view returns (address[] memory) {
        return members;
    }

    function taskCount() external view returns (uint256) {
        return tasks.length;
    }

    function closedRoundCount(uint256 id) external view returns (uint256) {
        return closedRounds[id].length;
    }

    // ------------------------------------------------------------------ parameters

    /// @dev Short phases, 2 rounds, threshold 2 of up to N: rounds finish, fail, slash and
    ///      forfeit within a run's depth.
    function _params(uint256 seed) internal view returns (RoundCoordinator.TaskParams memory p) {
        p = seed % 4 == 3 ? heParams() : defaultParams();
        p.minParticipants = 2;
        p.threshold = 2;
        p.registrationBlocks = 5;
        if (p.shareBlocks != 0) p.shareBlocks = 5;
        p.commitBlocks = 5;
        p.revealBlocks = 5;
        if (p.unmaskBlocks != 0) p.unmaskBlocks = 5;
        p.finalizeBlocks = 5;
        p.stake = uint128(bound(seed >> 8, 1, 100 ether));
        p.slashAmount = uint128(bound(seed >> 72, 0, p.stake));
        p.rewardPool = uint128(bound(seed >> 136, 0, 1000 ether));
        p.rewardPerRound = uint128(bound(seed >> 200, 0, p.rewardPool));
        p.aggregatorBond = seed % 3 == 0 ? 0 : uint128(bound(seed >> 40, 1, 100 ether));
        p.absenceFee = uint128(bound(seed >> 104, 0, p.slashAmount));
    }

    function _newTask(uint256 seed) internal {
        RoundCoordinator.TaskParams memory p = _params(seed);
        taskId = _createTask(p);
        tasks.push(taskId);
        ghostIn += p.rewardPool;
    }

    // ------------------------------------------------------------------ actions

    /// @notice The current phase's action, taken by every eligible member whose bit is set in
    ///         `mask`: register (and the aggregator's bond), shareKeys, commit, reveal (with a
    ///         wrong salt first, which must fail, for the bits of `wrongSalt`; those whose bit
    ///         is also clear in `mask` never reveal and are slashed), postUnmask, or the
    ///         aggregator's finalize (when `finalizeNow`). Before commits and unmask shares
    ///         (HE: the model) the aggregator declares the unavailable blobs: the members whose
    ///         bit is set in `wrongSalt >> 128` (bundles) or `wrongSalt >> 192` (inputs).
    function act(uint256 mask, uint256 wrongSalt, bool finalizeNow) public {
        RoundCoordinator.State memory s = rc.taskState(taskId);
        if (s.phase == RoundCoordinator.Phase.Ended || block.number > s.deadline) return;
        if (_declareIfDue(s, wrongSalt)) return; // the declaration failed the round
        if (s.phase == RoundCoordinator.Phase.Finalize) {
            if (finalizeNow) _finalizeRound();
            return;
        }
        if (s.phase == RoundCoordinator.Phase.Registration && mask & (1 << 255) != 0) _bond();
        for (uint256 i = 0; i < N; ++i) {
            address a = members[i];
            if (s.phase == RoundCoordinator.Phase.Reveal && wrongSalt & (1 << i) != 0) _revealWrongSalt(a);
            if (mask & (1 << i) == 0) continue;
            if (s.phase == RoundCoordinator.Phase.Registration) _registerOne(a);
            else if (s.phase == RoundCoordinator.Phase.ShareKeys) _shareOne(a);
            else if (s.phase == RoundCoordinator.Phase.Commit) _commitOne(a);
            else if (s.phase == RoundCoordinator.Phase.Reveal) _revealOne(a);
            else if (s.phase == RoundCoordinator.Phase.Unmask) _unmaskOne(a);
        }
    }

    /// @notice `act`, then roll 1..4 blocks past the deadline and advance: the advance must
    ///         not revert. A Finalize phase the aggregator skipped times out here.
    function advance(uint256 blocks, uint256 mask, uint256 wrongSalt, bool finalizeNow) external {
        RoundCoordinator.State memory s = rc.taskState(taskId);
        if (s.phase == RoundCoordinator.Phase.Ended) return;
        act(mask, wrongSalt, finalizeNow);
        RoundCoordinator.State memory next = rc.taskState(taskId);
        if (next.phase != s.phase || next.round != s.round) return; // finalized or failed: a new phase is open
        calls["advance"]++;
        vm.roll(uint256(next.deadline) + 1 + bound(blocks, 0, 3));
        _advanceChecked(next);
    }

    function newTask(uint256 seed) external {
        if (_phase(taskId) != RoundCoordinator.Phase.Ended) return;
        calls["newTask"]++;
        _newTask(seed);
    }

    /// @dev Returns true when the declaration moved the task on (the round failed).
    function _declareIfDue(RoundCoordinator.State memory s, uint256 bits) internal returns (bool) {
        bool shares = s.phase == RoundCoordinator.Phase.Commit && s.hasShareKeys
            && s.availability == RoundCoordinator.Availability.Open;
        bool inputs = (s.phase == RoundCoordinator.Phase.Unmask
                || (s.phase == RoundCoordinator.Phase.Finalize && !s.hasShareKeys))
            && s.availability != RoundCoordinator.Availability.InputsFixed;
        if (!shares && !inputs) return false;
        RoundCoordinator.Status posted = shares ? RoundCoordinator.Status.Shared : RoundCoordinator.Status.Revealed;
        uint256 pick = shares ? bits >> 128 : bits >> 192;
        address[] memory all = keys.participants(taskId);
        uint32[] memory withheld = new uint32[](all.length);
        uint256 k;
        for (uint256 i = 0; i < all.length; ++i) {
            if (pick & (1 << i) != 0 && _status(all[i]) == posted) withheld[k++] = uint32(i);
        }
        assembly ("memory-safe") {
            mstore(withheld, k)
        }
        calls[shares ? bytes32("declareShares") : bytes32("declareInputs")]++;
        uint256 fee = rc.taskParams(taskId).absenceFee; // a declared member pays the absence fee
        for (uint256 j = 0; j < k; ++j) {
            address a = all[withheld[j]];
            uint256 stake = ghostStake[taskId][a];
            ghostStake[taskId][a] = stake - (stake < fee ? stake : fee);
        }
        _declareUnavailable(taskId, withheld);
        RoundCoordinator.State memory next = rc.taskState(taskId);
        return next.phase != s.phase || next.round != s.round;
    }

    function _bond() internal {
        if (rc.bondOf(taskId) != 0 || rc.taskParams(taskId).aggregatorBond == 0) return;
        calls["postBond"]++;
        _postBond(taskId);
        ghostIn += rc.taskParams(taskId).aggregatorBond;
    }

    function _registerOne(address a) internal {
        if (!_notRegistered(a) || rc.taskState(taskId).acted >= rc.taskParams(taskId).maxParticipants) return;
        calls["register"]++;
        _register(taskId, a);
        uint128 stake = rc.taskParams(taskId).stake;
        ghostStake[taskId][a] = stake;
        ghostIn += stake;
    }

    function _shareOne(address a) internal {
        if (!_canShare(a)) return;
        calls["shareKeys"]++;
        _shareKeys(taskId, a);
    }

    function _commitOne(address a) internal {
        if (!_canCommit(a)) return;
        calls["commit"]++;
        _commit(taskId, a);
        ghostCommitted[taskId][rc.taskState(taskId).round][a] = true;
    }

    function _revealOne(address a) internal {
        if (!_canReveal(a)) return;
        calls["reveal"]++;
        _reveal(taskId, a);
    }

    /// @dev A reveal with a wrong salt must fail with RevealMismatch and change nothing.
    function _revealWrongSalt(address a) internal {
        if (!_canReveal(a)) return;
        calls["revealWrongSalt"]++;
        uint32 round = rc.taskState(taskId).round;
        bytes32 wrong = bytes32(uint256(_salt(a)) ^ uint256(keccak256(abi.encode(block.number, a))));
        vm.prank(a);
        try rc.reveal(taskId, _inputCid(a), wrong) {
            revert("a wrong salt opened the commitment");
        } catch (bytes memory err) {
            require(
                keccak256(err)
                    == keccak256(abi.encodeWithSelector(RoundCoordinator.RevealMismatch.selector, taskId, round, a)),
                "wrong salt: not RevealMismatch"
            );
        }
        require(_status(a) == RoundCoordinator.Status.Committed, "a failed reveal changed the status");
    }

    function _unmaskOne(address a) internal {
        if (!_canUnmask(a)) return;
        calls["postUnmask"]++;
        _postUnmask(taskId, a);
    }

    function _finalizeRound() internal {
        calls["finalize"]++;
        uint256 before = rc.poolOf(taskId) + rc.slashedOf(taskId);
        uint32 round = rc.taskState(taskId).round;
        uint32 count = rc.taskState(taskId).survivors;
        _finalize(taskId);
        uint256 paid = before - (rc.poolOf(taskId) + rc.slashedOf(taskId));
        require(paid % count == 0, "paid not a multiple of |U|");
        _credit(round, paid / count);
    }

    /// @dev The first member from `seed` on with a credit in the chosen task claims it.
    function claim(uint256 seed, uint256 taskSeed) external {
        uint256 id = tasks[bound(taskSeed, 0, tasks.length - 1)];
        for (uint256 k = 0; k < N; ++k) {
            address a = members[(seed % N + k) % N];
            uint256 credit = rc.creditOf(id, a);
            if (credit == 0) continue;
            calls["claim"]++;
            uint256 before = token.balanceOf(a);
            vm.prank(a);
            rc.claimRewards(id);
            require(token.balanceOf(a) - before == credit, "claim paid other than the credit");
            ghostClaimed[id][a] += credit;
            ghostOut += credit;
            return;
        }
    }

    function withdraw(uint256 seed, uint256 taskSeed, uint8 who) external {
        uint256 id = tasks[bound(taskSeed, 0, tasks.length - 1)];
        if (_phase(id) != RoundCoordinator.Phase.Ended) return;
        if (who % 3 == 0) {
            uint256 pool = rc.poolOf(id);
            if (pool == 0) return;
            calls["withdrawPool"]++;
            vm.prank(owner);
            rc.withdrawPool(id);
            ghostOut += pool;
        } else if (who % 3 == 1) {
            uint256 bond = rc.bondOf(id);
            if (bond == 0) return;
            calls["withdrawBond"]++;
            vm.prank(aggregator);
            rc.withdrawBond(id);
            ghostOut += bond;
        } else {
            address a = members[seed % N];
            uint256 stake = rc.memberOf(id, a).stake;
            if (stake == 0) return;
            calls["withdrawStake"]++;
            vm.prank(a);
            rc.withdrawStake(id);
            ghostStake[id][a] = 0;
            ghostOut += stake;
        }
    }

    // ------------------------------------------------------------------ internals

    function _advanceChecked(RoundCoordinator.State memory s) internal {
        uint32 round = s.round;
        RoundCoordinator.Phase phase = s.phase;
        uint256 bondBefore = rc.bondOf(taskId);
        if (phase == RoundCoordinator.Phase.Reveal) _predictCharges(true);
        if (phase == RoundCoordinator.Phase.ShareKeys && s.acted < rc.taskParams(taskId).threshold) {
            _predictCharges(false);
        }
        try rc.advance(taskId) {}
        catch (bytes memory err) {
            advanceReverts += 1;
            lastAdvanceError = err;
            return;
        }
        if (phase == RoundCoordinator.Phase.Reveal) closedRounds[taskId].push(round);
        uint256 bondAfter = rc.bondOf(taskId);
        if (bondAfter < bondBefore) {
            // forfeited: the whole bond split among the round's U (remainder to `slashed`)
            _credit(round, bondBefore / s.survivors);
            calls["forfeit"]++;
        }
    }

    /// @dev Before Reveal closes (`fixU`) or a ShareKeys phase fails: members that did not
    ///         act in the round's first phase pay the absence fee, and (`fixU`) those who
    ///         committed and did not reveal lose slashAmount, each capped by the stake.
    function _predictCharges(bool fixU) internal {
        RoundCoordinator.TaskParams memory p = rc.taskParams(taskId);
        uint32 round = rc.taskState(taskId).round;
        for (uint256 i = 0; i < N; ++i) {
            address a = members[i];
            RoundCoordinator.Member memory m = rc.memberOf(taskId, a);
            if (m.index == 0 || m.ejected) continue;
            RoundCoordinator.Status st = _status(a);
            uint256 fee;
            if (st == RoundCoordinator.Status.None || (fixU && st == RoundCoordinator.Status.Shared)) {
                fee = p.absenceFee; // absent from the first phase, or shared and never committed
            } else if (fixU && st == RoundCoordinator.Status.Committed) {
                require(ghostCommitted[taskId][round][a], "committed without the handler");
                fee = p.slashAmount;
                calls["slash"]++;
            }
            uint256 stake = ghostStake[taskId][a];
            ghostStake[taskId][a] = stake - (stake < fee ? stake : fee);
        }
    }

    function _credit(uint32 round, uint256 per) internal {
        address[] memory u = survivorsOf(rc, taskId, round);
        for (uint256 i = 0; i < u.length; ++i) ghostEarned[taskId][u[i]] += per;
    }

    function _open(RoundCoordinator.Phase phase) internal view returns (bool) {
        RoundCoordinator.State memory s = rc.taskState(taskId);
        return s.phase == phase && block.number <= s.deadline;
    }

    function _notRegistered(address a) internal view returns (bool) {
        return rc.memberOf(taskId, a).index == 0;
    }

    function _status(address a) internal view returns (RoundCoordinator.Status) {
        return statusIn(rc, taskId, a);
    }

    function _active(address a) internal view returns (bool) {
        RoundCoordinator.Member memory m = rc.memberOf(taskId, a);
        return m.index != 0 && !m.ejected;
    }

    function _canShare(address a) internal view returns (bool) {
        return _active(a) && _status(a) == RoundCoordinator.Status.None;
    }

    function _canCommit(address a) internal view returns (bool) {
        if (!_active(a)) return false;
        RoundCoordinator.Status st = _status(a);
        return rc.taskState(taskId).hasShareKeys ? st == RoundCoordinator.Status.Shared : st == RoundCoordinator.Status.None;
    }

    function _canReveal(address a) internal view returns (bool) {
        return _status(a) == RoundCoordinator.Status.Committed;
    }

    function _canUnmask(address a) internal view returns (bool) {
        return _status(a) == RoundCoordinator.Status.Revealed;
    }
}

/// @notice Handler-based invariants over random sequences of the handler's actions.
contract InvariantTest is TestBase {
    Handler internal h;
    RoundCoordinator internal rc;
    RewardToken internal token;
    address[] internal accounts;

    function setUp() public {
        h = new Handler();
        rc = h.coordinator();
        token = h.rewardToken();
        accounts = h.allMembers();
        bytes4[] memory selectors = new bytes4[](5);
        selectors[0] = Handler.act.selector;
        selectors[1] = Handler.advance.selector;
        selectors[2] = Handler.claim.selector;
        selectors[3] = Handler.withdraw.selector;
        selectors[4] = Handler.newTask.selector;
        targetContract(address(h));
        targetSelector(FuzzSelector(address(h), selectors));
    }

    /// @notice U ⊆ committers: every member of every fixed U committed in that round.
    function invariant_survivorsCommitted() public view {
        for (uint256 t = 0; t < h.taskCount(); ++t) {
            uint256 id = h.tasks(t);
            for (uint256 k = 0; k < h.closedRoundCount(id); ++k) {
                uint32 round = h.closedRounds(id, k);
                address[] memory u = survivorsOf(rc, id, round);
                for (uint256 i = 0; i < u.length; ++i) {
                    vm.assertTrue(h.ghostCommitted(id, round, u[i]), "a survivor that never committed");
                    vm.assertTrue(
                        rc.commitmentOf(id, u[i], round) != bytes32(0) || rc.memberOf(id, u[i]).round != round,
                        "a survivor without its commitment"
                    );
                }
            }
        }
    }

    /// @notice Nobody is paid twice: what a member claimed plus its open credit is exactly
    ///         what it earned, by the handler's own arithmetic.
    function invariant_nobodyPaidTwice() public view {
        for (uint256 t = 0; t < h.taskCount(); ++t) {
            uint256 id = h.tasks(t);
            for (uint256 i = 0; i < accounts.length; ++i) {
                address a = accounts[i];
                vm.assertEq(
                    h.ghostClaimed(id, a) + rc.creditOf(id, a), h.ghostEarned(id, a), "claimed + credit != earned"
                );
            }
        }
    }

    /// @notice The coordinator holds exactly pool + stakes + unclaimed credits + slashed +
    ///         bond of every task, and exactly what flowed in less what flowed out.
    function invariant_balanceMatchesBooks() public view {
        uint256 owed;
        for (uint256 t = 0; t < h.taskCount(); ++t) {
            uint256 id = h.tasks(t);
            owed += rc.poolOf(id) + rc.slashedOf(id) + rc.bondOf(id);
            for (uint256 i = 0; i < accounts.length; ++i) {
                owed += rc.memberOf(id, accounts[i]).stake + rc.creditOf(id, accounts[i]);
            }
        }
        uint256 balance = token.balanceOf(address(rc));
        vm.assertEq(balance, owed, "balance != pool + stakes + credits + slashed + bond");
        vm.assertEq(balance, h.ghostIn() - h.ghostOut(), "balance != in - out");
    }

    function invariant_supplyConserved() public view {
        vm.assertEq(token.totalSupply(), h.initialSupply(), "supply changed");
    }

    /// @notice A stake changes only by slashing (predicted by the handler) or its withdrawal.
    function invariant_stakeChangesOnlyBySlashing() public view {
        for (uint256 t = 0; t < h.taskCount(); ++t) {
            uint256 id = h.tasks(t);
            for (uint256 i = 0; i < accounts.length; ++i) {
                vm.assertEq(rc.memberOf(id, accounts[i]).stake, h.ghostStake(id, accounts[i]), "stake moved");
            }
        }
    }

    /// @notice No task can be bricked: every advance past a deadline went through.
    function invariant_advanceNeverReverts() public view {
        vm.assertEq(h.advanceReverts(), 0, "advance reverted past a deadline");
    }
}
