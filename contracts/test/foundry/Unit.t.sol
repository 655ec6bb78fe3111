// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {vm} from "./utils/Vm.sol";
import {CoordinatorBase, survivorsOf, statusIn, cidOf} from "./Base.sol";
import {RoundCoordinator} from "../../src/RoundCoordinator.sol";
import {KeyRegistry} from "../../src/KeyRegistry.sol";
import {ModelRegistry} from "../../src/ModelRegistry.sol";
import {RewardToken} from "../../src/RewardToken.sol";
import {FeeToken} from "../FeeToken.sol";
import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";

/// @notice One test per external function's happy path and one per custom error, each
///         error matched with its exact selector and arguments.
contract UnitTest is CoordinatorBase {
    RoundCoordinator.Phase constant NONE = RoundCoordinator.Phase.None;
    RoundCoordinator.Phase constant REGISTRATION = RoundCoordinator.Phase.Registration;
    RoundCoordinator.Phase constant SHAREKEYS = RoundCoordinator.Phase.ShareKeys;
    RoundCoordinator.Phase constant COMMIT = RoundCoordinator.Phase.Commit;
    RoundCoordinator.Phase constant REVEAL = RoundCoordinator.Phase.Reveal;
    RoundCoordinator.Phase constant UNMASK = RoundCoordinator.Phase.Unmask;
    RoundCoordinator.Phase constant FINALIZE = RoundCoordinator.Phase.Finalize;
    RoundCoordinator.Phase constant ENDED = RoundCoordinator.Phase.Ended;

    /// @dev A started task moved on to `phase` of round 1 with everyone in it so far.
    function _taskAt(RoundCoordinator.Phase phase) internal returns (uint256 taskId) {
        taskId = _startedTask();
        if (phase == SHAREKEYS) return taskId;
        for (uint256 i = 0; i < N; ++i) _shareKeys(taskId, members[i]);
        _finishPhase(taskId);
        _declareNone(taskId); // every bundle available
        if (phase == COMMIT) return taskId;
        for (uint256 i = 0; i < N; ++i) _commit(taskId, members[i]);
        _finishPhase(taskId);
        if (phase == REVEAL) return taskId;
        for (uint256 i = 0; i < N; ++i) _reveal(taskId, members[i]);
        _finishPhase(taskId);
        _declareNone(taskId); // every input available
        if (phase == UNMASK) return taskId;
        for (uint256 i = 0; i < N; ++i) _postUnmask(taskId, members[i]);
        _finishPhase(taskId);
        require(_phase(taskId) == FINALIZE, "not at Finalize");
    }

    function _endedTask() internal returns (uint256 taskId) {
        taskId = _startedTask();
        _runToEnd(taskId);
    }

    function _wrongPhase(uint256 taskId, RoundCoordinator.Phase expected, RoundCoordinator.Phase actual)
        internal
        pure
        returns (bytes memory)
    {
        return abi.encodeWithSelector(RoundCoordinator.WrongPhase.selector, taskId, expected, actual);
    }

    function _invalid(string memory name) internal pure returns (bytes memory) {
        return abi.encodeWithSelector(RoundCoordinator.InvalidParameter.selector, name);
    }

    // ================================================================== happy paths

    function test_constructor_deploysRegistries() public view {
        vm.assertEq(address(rc.token()), address(token), "token");
        vm.assertEq(keys.coordinator(), address(rc), "key registry writer");
        vm.assertEq(models.coordinator(), address(rc), "model registry writer");
        vm.assertEq(rc.taskCount(), 0, "no task");
    }

    function test_createTask() public {
        RoundCoordinator.TaskParams memory p = defaultParams();
        uint256 before = token.balanceOf(owner);
        vm.expectEmit(true, true, true, true, address(rc));
        emit RoundCoordinator.TaskCreated(1, owner, aggregator, p.protocolId, p.paramsHash);
        uint256 taskId = _createTask(p);
        vm.assertEq(taskId, 1, "first id");
        vm.assertEq(rc.taskCount(), 1, "count");
        vm.assertEq(rc.taskOwner(taskId), owner, "owner");
        vm.assertEq(rc.poolOf(taskId), p.rewardPool, "pool");
        vm.assertEq(token.balanceOf(owner), before - p.rewardPool, "deposit pulled");
        vm.assertEq(token.balanceOf(address(rc)), p.rewardPool, "deposit held");
        vm.assertEq(keccak256(abi.encode(rc.taskParams(taskId))), keccak256(abi.encode(p)), "params stored");
        RoundCoordinator.State memory s = rc.taskState(taskId);
        vm.assertTrue(s.phase == REGISTRATION, "registration open");
        vm.assertEq(s.deadline, block.number + p.registrationBlocks, "deadline");
        vm.assertEq(s.expected, p.maxParticipants, "expected");
        vm.assertTrue(s.hasShareKeys, "masking task");
        (bytes memory cid, bytes32 digest,) = models.modelOf(taskId, 0);
        vm.assertEq(cid, MODEL0, "initial model");
        vm.assertEq(digest, sha256(MODEL0), "initial digest");
        vm.assertEq(_createTask(p), 2, "second id");
    }

    function test_createTask_he() public {
        uint256 taskId = _createTask(heParams());
        vm.assertFalse(rc.taskState(taskId).hasShareKeys, "no ShareKeys");
    }

    function test_postBond() public {
        uint256 taskId = _createTask(defaultParams());
        vm.expectEmit(true, true, false, true, address(rc));
        emit RoundCoordinator.BondPosted(taskId, aggregator, 50 ether);
        _postBond(taskId);
        vm.assertEq(rc.bondOf(taskId), 50 ether, "bond");
        vm.assertEq(token.balanceOf(address(rc)), 150 ether, "held");
    }

    function test_register() public {
        uint256 taskId = _createTask(defaultParams());
        address a = members[0];
        vm.expectEmit(true, true, false, true, address(rc));
        emit RoundCoordinator.Registered(taskId, a, 1, _agreementKey(a), "");
        _register(taskId, a);
        RoundCoordinator.Member memory m = rc.memberOf(taskId, a);
        vm.assertEq(m.index, 1, "index");
        vm.assertEq(m.stake, 100 ether, "stake");
        vm.assertEq(keys.indexOf(taskId, a), 1, "key registry index");
        (bytes32 k,) = keys.keysOf(taskId, a);
        vm.assertEq(k, _agreementKey(a), "agreement key");
        vm.assertEq(token.balanceOf(a), FUNDS - 100 ether, "stake pulled");
        vm.assertEq(rc.taskState(taskId).acted, 1, "acted");
    }

    function test_register_fullTaskAdvancesEarly() public {
        uint256 taskId = _createTask(defaultParams());
        _postBond(taskId);
        for (uint256 i = 0; i < N; ++i) _register(taskId, members[i]);
        rc.advance(taskId); // everyone who may register did: no need to wait for the deadline
        vm.assertTrue(_phase(taskId) == SHAREKEYS, "round 1 started");
        vm.assertEq(rc.taskState(taskId).round, 1, "round 1");
        vm.assertEq(rc.taskState(taskId).expected, N, "everyone may share");
    }

    function test_shareKeys() public {
        uint256 taskId = _taskAt(SHAREKEYS);
        address a = members[0];
        vm.expectEmit(true, true, true, true, address(rc));
        emit RoundCoordinator.SharesPosted(taskId, 1, a, keccak256(abi.encode("mask", a)), _bundleCid(a));
        _shareKeys(taskId, a);
        vm.assertTrue(statusIn(rc, taskId, a) == RoundCoordinator.Status.Shared, "shared");
        vm.assertEq(rc.taskState(taskId).acted, 1, "acted");
    }

    function test_commit() public {
        uint256 taskId = _taskAt(COMMIT);
        address a = members[0];
        bytes32 c = rc.commitmentFor(taskId, 1, a, _inputCid(a), _salt(a));
        vm.expectEmit(true, true, true, true, address(rc));
        emit RoundCoordinator.Committed(taskId, 1, a, c);
        _commit(taskId, a);
        vm.assertTrue(statusIn(rc, taskId, a) == RoundCoordinator.Status.Committed, "committed");
        vm.assertEq(rc.commitmentOf(taskId, a, 1), c, "commitment of round 1");
        vm.assertEq(rc.commitmentOf(taskId, a, 2), bytes32(0), "none in round 2");
        vm.assertEq(rc.commitmentOf(taskId, members[1], 1), bytes32(0), "none for another");
    }

    function test_commit_heTaskWithoutShares() public {
        uint256 taskId = _startedTask(heParams(), N);
        vm.assertTrue(_phase(taskId) == COMMIT, "HE rounds start at Commit");
        _commit(taskId, members[0]);
        vm.assertTrue(statusIn(rc, taskId, members[0]) == RoundCoordinator.Status.Committed, "committed");
    }

    function test_reveal() public {
        uint256 taskId = _taskAt(REVEAL);
        address a = members[0];
        vm.expectEmit(true, true, true, true, address(rc));
        emit RoundCoordinator.Revealed(taskId, 1, a, _inputCid(a));
        _reveal(taskId, a);
        vm.assertTrue(statusIn(rc, taskId, a) == RoundCoordinator.Status.Revealed, "revealed");
    }

    function test_advance_closesRevealAndSlashes() public {
        uint256 taskId = _taskAt(REVEAL);
        for (uint256 i = 1; i < N; ++i) _reveal(taskId, members[i]); // members[0] does not
        vm.roll(rc.taskState(taskId).deadline + 1);
        vm.expectEmit(true, true, true, true, address(rc));
        emit RoundCoordinator.Slashed(taskId, 1, members[0], 40 ether);
        rc.advance(taskId);
        vm.assertTrue(_phase(taskId) == UNMASK, "unmask");
        vm.assertEq(rc.taskState(taskId).survivors, N - 1, "|U|");
        vm.assertEq(rc.memberOf(taskId, members[0]).stake, 60 ether, "slashed stake");
        vm.assertEq(rc.slashedOf(taskId), 40 ether, "slashed held");
        vm.assertTrue(statusIn(rc, taskId, members[0]) == RoundCoordinator.Status.Slashed, "status");
        address[] memory u = survivorsOf(rc, taskId, 1);
        vm.assertEq(u.length, N - 1, "U listed");
        for (uint256 i = 1; i < N; ++i) vm.assertEq(u[i - 1], members[i], "U in registration order");
    }

    function test_postUnmask() public {
        uint256 taskId = _taskAt(UNMASK);
        vm.expectEmit(true, true, true, true, address(rc));
        emit RoundCoordinator.UnmaskPosted(taskId, 1, members[0], cidOf(abi.encodePacked("unmask-", members[0])));
        _postUnmask(taskId, members[0]);
        vm.assertTrue(statusIn(rc, taskId, members[0]) == RoundCoordinator.Status.Unmasked, "unmasked");
        for (uint256 i = 1; i < N; ++i) _postUnmask(taskId, members[i]);
        rc.advance(taskId); // all of U posted: Unmask ends early
        vm.assertTrue(_phase(taskId) == FINALIZE, "finalize");
        vm.assertTrue(rc.taskState(taskId).unmaskComplete, "complete");
    }

    function test_finalizeRound() public {
        uint256 taskId = _taskAt(FINALIZE);
        uint256 per = uint256(30 ether) / N;
        vm.expectEmit(true, true, false, true, address(rc));
        emit RoundCoordinator.RoundFinalized(taskId, 1, uint32(N), per);
        _finalize(taskId);
        (bytes memory cid, bytes32 digest,) = models.modelOf(taskId, 1);
        vm.assertEq(cid, _modelCid(1), "model");
        vm.assertEq(digest, sha256(_modelCid(1)), "digest");
        vm.assertEq(models.latestRound(taskId), 1, "latest");
        vm.assertEq(rc.poolOf(taskId), 100 ether - per * N, "pool paid");
        vm.assertEq(rc.creditOf(taskId, members[0]), per, "credit");
        vm.assertEq(rc.taskState(taskId).round, 2, "round 2");
        vm.assertTrue(_phase(taskId) == SHAREKEYS, "round 2 open");
    }

    function test_claimRewards() public {
        uint256 taskId = _taskAt(FINALIZE);
        _finalize(taskId);
        uint256 per = uint256(30 ether) / N;
        uint256 before = token.balanceOf(members[0]);
        vm.expectEmit(true, true, false, true, address(rc));
        emit RoundCoordinator.RewardClaimed(taskId, members[0], per);
        vm.prank(members[0]);
        rc.claimRewards(taskId);
        vm.assertEq(token.balanceOf(members[0]), before + per, "paid");
        vm.assertEq(rc.creditOf(taskId, members[0]), 0, "nothing left");
        vm.assertEq(rc.memberOf(taskId, members[0]).claimedThrough, 1, "claimed through round 1");
    }

    function test_withdrawStake_withdrawPool_withdrawBond() public {
        uint256 taskId = _endedTask();
        vm.assertTrue(_phase(taskId) == ENDED, "ended");
        vm.prank(members[0]);
        vm.expectEmit(true, true, false, true, address(rc));
        emit RoundCoordinator.StakeWithdrawn(taskId, members[0], 100 ether);
        rc.withdrawStake(taskId);
        uint256 pool = rc.poolOf(taskId);
        vm.assertEq(pool, 100 ether - 2 * (uint256(30 ether) / N) * N, "pool left");
        vm.prank(owner);
        vm.expectEmit(true, true, false, true, address(rc));
        emit RoundCoordinator.PoolWithdrawn(taskId, owner, pool);
        rc.withdrawPool(taskId);
        vm.prank(aggregator);
        vm.expectEmit(true, true, false, true, address(rc));
        emit RoundCoordinator.BondWithdrawn(taskId, aggregator, 50 ether);
        rc.withdrawBond(taskId);
        vm.assertEq(rc.poolOf(taskId), 0, "pool out");
        vm.assertEq(rc.bondOf(taskId), 0, "bond out");
        vm.assertEq(rc.memberOf(taskId, members[0]).stake, 0, "stake out");
    }

    function test_advance_registrationWithoutBondEndsTask() public {
        uint256 taskId = _createTask(defaultParams());
        for (uint256 i = 0; i < N; ++i) _register(taskId, members[i]);
        _finishPhase(taskId);
        vm.assertTrue(_phase(taskId) == ENDED, "no bond, no task");
        vm.prank(members[0]);
        rc.withdrawStake(taskId);
    }

    function test_advance_tooFewRegistrationsEndsTask() public {
        uint256 taskId = _startedTask(defaultParams(), 2);
        vm.assertTrue(_phase(taskId) == ENDED, "ended");
    }

    function test_advance_tooFewSharesFailsRound() public {
        uint256 taskId = _taskAt(SHAREKEYS);
        _shareKeys(taskId, members[0]);
        vm.roll(rc.taskState(taskId).deadline + 1);
        vm.expectEmit(true, true, false, true, address(rc));
        emit RoundCoordinator.RoundFailed(taskId, 1, SHAREKEYS);
        rc.advance(taskId);
        vm.assertEq(rc.taskState(taskId).round, 2, "next round");
    }

    function test_advance_finalizeTimeoutForfeitsBond() public {
        uint256 taskId = _taskAt(FINALIZE);
        vm.roll(rc.taskState(taskId).deadline + 1);
        vm.expectEmit(true, true, false, true, address(rc));
        emit RoundCoordinator.BondForfeited(taskId, 1, uint256(50 ether) / N);
        rc.advance(taskId);
        vm.assertEq(rc.bondOf(taskId), 0, "bond gone");
        vm.assertEq(rc.creditOf(taskId, members[0]), uint256(50 ether) / N, "bond share");
        vm.assertEq(rc.slashedOf(taskId), 50 ether - (uint256(50 ether) / N) * N, "remainder kept");
    }

    function test_advance_incompleteUnmaskKeepsBond() public {
        uint256 taskId = _taskAt(UNMASK);
        _postUnmask(taskId, members[0]);
        _finishPhase(taskId);
        _finishPhase(taskId); // Finalize times out
        vm.assertEq(rc.bondOf(taskId), 50 ether, "bond kept");
    }

    function test_slashedStakePaidToNextFinalizedRound() public {
        uint256 taskId = _startedTask();
        _runRound(taskId, N, (1 << N) - 2, false); // members[0] commits, never reveals; no model
        vm.assertEq(rc.slashedOf(taskId), 40 ether + 50 ether % (N - 1), "slashed (+ bond remainder) held");
        uint256 per1 = uint256(50 ether) / (N - 1); // round 1: the forfeited bond
        _runRound(taskId);
        uint256 per2 = (uint256(30 ether) + 40 ether + 50 ether % (N - 1)) / N;
        vm.assertEq(rc.slashedOf(taskId), 0, "paid to the next finalized round");
        vm.assertEq(rc.creditOf(taskId, members[0]), per2, "slashed one earns round 2 only");
        vm.assertEq(rc.creditOf(taskId, members[1]), per1 + per2, "credit of both rounds");
    }

    function test_views() public {
        uint256 taskId = _taskAt(SHAREKEYS);
        vm.assertEq(rc.taskOwner(taskId), owner, "owner");
        vm.assertEq(rc.bondOf(taskId), 50 ether, "bond");
        vm.assertEq(rc.slashedOf(taskId), 0, "slashed");
        vm.assertTrue(statusIn(rc, taskId, members[0]) == RoundCoordinator.Status.None, "status");
        vm.assertEq(rc.creditOf(taskId, stranger), 0, "no credit");
        vm.assertEq(survivorsOf(rc, taskId, 1).length, 0, "U not fixed yet");
        vm.assertEq(keys.participantCount(taskId), N, "count");
        vm.assertEq(keys.participants(taskId)[N - 1], members[N - 1], "order");
        vm.assertEq(rc.MAX_PARTICIPANTS(), 512, "cap");
    }

    function test_rewardToken_mint() public {
        token.mint(stranger, 1);
        vm.assertEq(token.balanceOf(stranger), FUNDS + 1, "minted");
        vm.prank(stranger);
        vm.expectRevert(abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, stranger));
        token.mint(stranger, 1);
    }

    // ================================================================== errors

    function test_error_UnknownTask() public {
        bytes memory err = abi.encodeWithSelector(RoundCoordinator.UnknownTask.selector, 7);
        vm.expectRevert(err);
        rc.advance(7);
        vm.expectRevert(err);
        rc.taskState(7);
        _expectRevert(err);
        _register(7, members[0]);
        vm.expectRevert(err);
        rc.claimRewards(7);
    }

    function test_error_InvalidParameter() public {
        RoundCoordinator.TaskParams memory p;
        bytes memory model = MODEL0;
        p = defaultParams();
        p.aggregator = address(0);
        _expectInvalid(p, "aggregator");
        p = defaultParams();
        p.threshold = 0;
        _expectInvalid(p, "threshold");
        p = defaultParams();
        p.minParticipants = 2;
        _expectInvalid(p, "minParticipants");
        p = defaultParams();
        p.maxParticipants = 2;
        _expectInvalid(p, "maxParticipants");
        p = defaultParams();
        p.maxParticipants = 513;
        _expectInvalid(p, "maxParticipants");
        p = defaultParams();
        p.numRounds = 0;
        _expectInvalid(p, "numRounds");
        p = defaultParams();
        p.numRounds = 1001;
        _expectInvalid(p, "numRounds");
        p = defaultParams();
        p.registrationBlocks = 4;
        _expectInvalid(p, "registrationBlocks");
        p = defaultParams();
        p.shareBlocks = 100_801;
        _expectInvalid(p, "shareBlocks");
        p = defaultParams();
        p.commitBlocks = 4;
        _expectInvalid(p, "commitBlocks");
        p = defaultParams();
        p.revealBlocks = 0;
        _expectInvalid(p, "revealBlocks");
        p = defaultParams();
        p.unmaskBlocks = 100_801;
        _expectInvalid(p, "unmaskBlocks");
        p = defaultParams();
        p.unmaskBlocks = 0; // ShareKeys without Unmask
        _expectInvalid(p, "unmaskBlocks");
        p = defaultParams();
        p.finalizeBlocks = 4;
        _expectInvalid(p, "finalizeBlocks");
        p = defaultParams();
        p.slashAmount = p.stake + 1;
        _expectInvalid(p, "slashAmount");
        p = defaultParams();
        p.absenceFee = p.slashAmount + 1;
        _expectInvalid(p, "absenceFee");
        p = defaultParams();
        p.stake = uint128(type(uint128).max / p.maxParticipants);
        _expectInvalid(p, "stake");
        p = defaultParams();
        p.rewardPerRound = p.rewardPool + 1;
        _expectInvalid(p, "rewardPerRound");
        // a coordinator whose token is not a contract
        RoundCoordinator bad = new RoundCoordinator(RewardToken(address(0xdead)));
        vm.expectRevert(_invalid("token"));
        bad.createTask(defaultParams(), model, bytes32(0));
        // an empty initial model, an empty final model
        vm.prank(owner);
        vm.expectRevert(abi.encodeWithSelector(RoundCoordinator.MalformedCid.selector, ""));
        rc.createTask(defaultParams(), "", bytes32(0));
        uint256 taskId = _taskAt(FINALIZE);
        vm.prank(aggregator);
        vm.expectRevert(abi.encodeWithSelector(RoundCoordinator.MalformedCid.selector, ""));
        rc.finalizeRound(taskId, "", bytes32(0));
    }

    function _expectInvalid(RoundCoordinator.TaskParams memory p, string memory name) internal {
        vm.prank(owner);
        vm.expectRevert(_invalid(name));
        rc.createTask(p, MODEL0, bytes32(0));
    }

    function test_error_WrongPhase() public {
        uint256 taskId = _taskAt(COMMIT);
        _expectRevert(_wrongPhase(taskId, SHAREKEYS, COMMIT));
        _shareKeys(taskId, members[0]);
        _expectRevert(_wrongPhase(taskId, REVEAL, COMMIT));
        _reveal(taskId, members[0]);
        _expectRevert(_wrongPhase(taskId, UNMASK, COMMIT));
        _postUnmask(taskId, members[0]);
        _expectRevert(_wrongPhase(taskId, REGISTRATION, COMMIT));
        _register(taskId, stranger);
        _expectRevert(_wrongPhase(taskId, REGISTRATION, COMMIT));
        _postBond(taskId);
        _expectRevert(_wrongPhase(taskId, FINALIZE, COMMIT));
        _finalize(taskId);
        vm.expectRevert(_wrongPhase(taskId, ENDED, COMMIT));
        vm.prank(members[0]);
        rc.withdrawStake(taskId);
        vm.expectRevert(_wrongPhase(taskId, ENDED, COMMIT));
        vm.prank(owner);
        rc.withdrawPool(taskId);
        vm.expectRevert(_wrongPhase(taskId, ENDED, COMMIT));
        vm.prank(aggregator);
        rc.withdrawBond(taskId);
        uint256 ended = _endedTask();
        vm.expectRevert(_wrongPhase(ended, NONE, ENDED));
        rc.advance(ended);
        _expectRevert(_wrongPhase(ended, COMMIT, ENDED));
        _commit(ended, members[0]);
    }

    function test_error_DeadlinePassed() public {
        uint256 taskId = _createTask(defaultParams());
        uint64 deadline = rc.taskState(taskId).deadline;
        vm.roll(deadline + 1);
        _expectRevert(abi.encodeWithSelector(RoundCoordinator.DeadlinePassed.selector, taskId, deadline));
        _register(taskId, members[0]);
        taskId = _taskAt(COMMIT);
        deadline = rc.taskState(taskId).deadline;
        vm.roll(deadline + 1);
        _expectRevert(abi.encodeWithSelector(RoundCoordinator.DeadlinePassed.selector, taskId, deadline));
        _commit(taskId, members[0]);
    }

    function test_error_PhaseStillOpen() public {
        uint256 taskId = _taskAt(COMMIT); // Commit never ends early
        for (uint256 i = 0; i < N; ++i) _commit(taskId, members[i]);
        uint64 deadline = rc.taskState(taskId).deadline;
        vm.roll(deadline);
        vm.expectRevert(abi.encodeWithSelector(RoundCoordinator.PhaseStillOpen.selector, taskId, deadline));
        rc.advance(taskId);
    }

    function test_error_NotRegistered() public {
        uint256 taskId = _taskAt(SHAREKEYS);
        _expectRevert(abi.encodeWithSelector(RoundCoordinator.NotRegistered.selector, taskId, stranger));
        _shareKeys(taskId, stranger);
        vm.expectRevert(abi.encodeWithSelector(KeyRegistry.NotRegistered.selector, taskId, stranger));
        keys.keysOf(taskId, stranger);
    }

    function test_error_AlreadyRegistered() public {
        uint256 taskId = _createTask(defaultParams());
        _register(taskId, members[0]);
        _expectRevert(abi.encodeWithSelector(RoundCoordinator.AlreadyRegistered.selector, taskId, members[0]));
        _register(taskId, members[0]);
    }

    function test_error_TaskFull() public {
        RoundCoordinator.TaskParams memory p = defaultParams();
        p.maxParticipants = 3;
        uint256 taskId = _createTask(p);
        for (uint256 i = 0; i < 3; ++i) _register(taskId, members[i]);
        _expectRevert(abi.encodeWithSelector(RoundCoordinator.TaskFull.selector, taskId, 3));
        _register(taskId, members[3]);
    }

    function test_error_InsufficientStake() public {
        uint256 taskId = _createTask(defaultParams());
        vm.prank(stranger);
        token.approve(address(rc), 1 ether);
        _expectRevert(abi.encodeWithSelector(RoundCoordinator.InsufficientStake.selector, 100 ether, 1 ether, FUNDS));
        _register(taskId, stranger);
        address poor = address(0xB0B);
        vm.prank(poor);
        token.approve(address(rc), type(uint256).max);
        vm.expectRevert(
            abi.encodeWithSelector(RoundCoordinator.InsufficientStake.selector, 100 ether, type(uint256).max, 0)
        );
        _register(taskId, poor);
    }

    function test_error_InsufficientFunds() public {
        vm.prank(owner);
        token.approve(address(rc), 0);
        _expectRevert(abi.encodeWithSelector(RoundCoordinator.InsufficientFunds.selector, 100 ether, 0, FUNDS));
        _createTask(defaultParams());
        uint256 taskId = _createTask(_withOwnerApproval(defaultParams()));
        vm.prank(aggregator);
        token.approve(address(rc), 1);
        _expectRevert(abi.encodeWithSelector(RoundCoordinator.InsufficientFunds.selector, 50 ether, 1, FUNDS));
        _postBond(taskId);
    }

    function _withOwnerApproval(RoundCoordinator.TaskParams memory p)
        internal
        returns (RoundCoordinator.TaskParams memory)
    {
        vm.prank(owner);
        token.approve(address(rc), type(uint256).max);
        return p;
    }

    function test_error_DuplicateSubmission() public {
        uint256 taskId = _taskAt(SHAREKEYS);
        _shareKeys(taskId, members[0]);
        bytes memory err = abi.encodeWithSelector(RoundCoordinator.DuplicateSubmission.selector, taskId, 1, members[0]);
        _expectRevert(err);
        _shareKeys(taskId, members[0]);
        taskId = _taskAt(REVEAL);
        _reveal(taskId, members[0]);
        err = abi.encodeWithSelector(RoundCoordinator.DuplicateSubmission.selector, taskId, 1, members[0]);
        _expectRevert(err);
        _reveal(taskId, members[0]);
        for (uint256 i = 1; i < N; ++i) _reveal(taskId, members[i]);
        _finishPhase(taskId);
        _declareNone(taskId);
        _postUnmask(taskId, members[0]);
        _expectRevert(err);
        _postUnmask(taskId, members[0]);
    }

    function test_error_SharesMissing() public {
        uint256 taskId = _taskAt(SHAREKEYS);
        for (uint256 i = 1; i < N; ++i) _shareKeys(taskId, members[i]); // members[0] does not
        _finishPhase(taskId);
        _declareNone(taskId);
        _expectRevert(abi.encodeWithSelector(RoundCoordinator.SharesMissing.selector, taskId, 1, members[0]));
        _commit(taskId, members[0]);
    }

    function test_error_DuplicateCommit() public {
        uint256 taskId = _taskAt(COMMIT);
        _commit(taskId, members[0]);
        _expectRevert(abi.encodeWithSelector(RoundCoordinator.DuplicateCommit.selector, taskId, 1, members[0]));
        _commit(taskId, members[0]);
    }

    function test_error_NotCommitted() public {
        uint256 taskId = _taskAt(COMMIT);
        for (uint256 i = 1; i < N; ++i) _commit(taskId, members[i]);
        _finishPhase(taskId);
        _expectRevert(abi.encodeWithSelector(RoundCoordinator.NotCommitted.selector, taskId, 1, members[0]));
        _reveal(taskId, members[0]);
    }

    function test_error_RevealMismatch() public {
        uint256 taskId = _taskAt(REVEAL);
        vm.prank(members[0]);
        vm.expectRevert(abi.encodeWithSelector(RoundCoordinator.RevealMismatch.selector, taskId, 1, members[0]));
        rc.reveal(taskId, _inputCid(members[0]), bytes32(uint256(_salt(members[0])) ^ 1));
    }

    function test_error_NotSurvivor() public {
        uint256 taskId = _taskAt(REVEAL);
        for (uint256 i = 1; i < N; ++i) _reveal(taskId, members[i]);
        _finishPhase(taskId);
        _declareNone(taskId);
        _expectRevert(abi.encodeWithSelector(RoundCoordinator.NotSurvivor.selector, taskId, 1, members[0]));
        _postUnmask(taskId, members[0]);
    }

    function test_error_NotAggregator() public {
        uint256 taskId = _createTask(defaultParams());
        bytes memory err = abi.encodeWithSelector(RoundCoordinator.NotAggregator.selector, taskId, owner);
        vm.prank(owner);
        vm.expectRevert(err);
        rc.postBond(taskId);
        vm.prank(owner);
        vm.expectRevert(err);
        rc.withdrawBond(taskId);
        taskId = _taskAt(FINALIZE);
        vm.prank(members[0]);
        vm.expectRevert(abi.encodeWithSelector(RoundCoordinator.NotAggregator.selector, taskId, members[0]));
        rc.finalizeRound(taskId, "m", bytes32(0));
    }

    function test_error_NotTaskOwner() public {
        uint256 taskId = _endedTask();
        vm.prank(aggregator);
        vm.expectRevert(abi.encodeWithSelector(RoundCoordinator.NotTaskOwner.selector, taskId, aggregator));
        rc.withdrawPool(taskId);
    }

    function test_error_NothingToWithdraw() public {
        RoundCoordinator.TaskParams memory p = defaultParams();
        p.rewardPool = 0;
        p.rewardPerRound = 0;
        uint256 taskId = _startedTask(p, N);
        _runToEnd(taskId);
        bytes memory err = abi.encodeWithSelector(RoundCoordinator.NothingToWithdraw.selector, taskId, owner);
        vm.prank(owner);
        vm.expectRevert(err); // empty pool
        rc.withdrawPool(taskId);
        vm.prank(stranger);
        vm.expectRevert(abi.encodeWithSelector(RoundCoordinator.NothingToWithdraw.selector, taskId, stranger));
        rc.withdrawStake(taskId); // no stake
        vm.prank(members[0]);
        vm.expectRevert(abi.encodeWithSelector(RoundCoordinator.NothingToWithdraw.selector, taskId, members[0]));
        rc.claimRewards(taskId); // no reward
        vm.prank(members[0]);
        rc.withdrawStake(taskId);
        vm.prank(members[0]);
        vm.expectRevert(abi.encodeWithSelector(RoundCoordinator.NothingToWithdraw.selector, taskId, members[0]));
        rc.withdrawStake(taskId); // twice
        vm.prank(aggregator);
        rc.withdrawBond(taskId);
        vm.prank(aggregator);
        vm.expectRevert(abi.encodeWithSelector(RoundCoordinator.NothingToWithdraw.selector, taskId, aggregator));
        rc.withdrawBond(taskId); // twice
    }

    function test_error_UnsupportedToken() public {
        FeeToken fee = new FeeToken();
        RoundCoordinator feeRc = new RoundCoordinator(RewardToken(address(fee)));
        fee.mint(owner, 1000 ether);
        vm.startPrank(owner);
        fee.approve(address(feeRc), type(uint256).max);
        vm.expectRevert(
            abi.encodeWithSelector(RoundCoordinator.UnsupportedToken.selector, address(fee), 100 ether, 99 ether)
        );
        feeRc.createTask(defaultParams(), MODEL0, bytes32(0));
        vm.stopPrank();
    }

    function test_error_BondAlreadyPosted() public {
        uint256 taskId = _createTask(defaultParams());
        _postBond(taskId);
        vm.prank(aggregator);
        vm.expectRevert(abi.encodeWithSelector(RoundCoordinator.BondAlreadyPosted.selector, taskId));
        rc.postBond(taskId);
        RoundCoordinator.TaskParams memory p = defaultParams();
        p.aggregatorBond = 0; // a task without a bond
        taskId = _createTask(p);
        vm.prank(aggregator);
        vm.expectRevert(abi.encodeWithSelector(RoundCoordinator.BondAlreadyPosted.selector, taskId));
        rc.postBond(taskId);
    }

    function test_error_registries_NotCoordinator() public {
        vm.expectRevert(abi.encodeWithSelector(KeyRegistry.NotCoordinator.selector, address(this)));
        keys.record(1, stranger, bytes32(0), "");
        vm.expectRevert(abi.encodeWithSelector(ModelRegistry.NotCoordinator.selector, address(this)));
        models.record(1, 5, "m", bytes32(0));
    }

    function test_error_registries_NoModel() public {
        vm.expectRevert(abi.encodeWithSelector(ModelRegistry.NoModel.selector, 1, 0));
        models.latestRound(1);
        uint256 taskId = _createTask(defaultParams());
        vm.expectRevert(abi.encodeWithSelector(ModelRegistry.NoModel.selector, taskId, 1));
        models.modelOf(taskId, 1);
    }

    // ================================================================== data availability, allowlist, absence, ejection

    function _idx(uint32 a) internal pure returns (uint32[] memory out) {
        out = new uint32[](1);
        out[0] = a;
    }

    function test_declareUnavailable_shares() public {
        uint256 taskId = _taskAt(SHAREKEYS);
        for (uint256 i = 0; i < N; ++i) _shareKeys(taskId, members[i]);
        _finishPhase(taskId);
        vm.expectEmit(true, true, false, true, address(rc));
        emit RoundCoordinator.Unavailable(taskId, 1, COMMIT, _idx(2));
        _declareUnavailable(taskId, _idx(2));
        vm.assertTrue(statusIn(rc, taskId, members[2]) == RoundCoordinator.Status.SharesWithheld, "withheld");
        _expectRevert(abi.encodeWithSelector(RoundCoordinator.BlobWithheld.selector, taskId, 1, members[2]));
        _commit(taskId, members[2]);
        _commit(taskId, members[0]); // the others commit
    }

    function test_declareUnavailable_inputs() public {
        uint256 taskId = _taskAt(REVEAL);
        for (uint256 i = 0; i < N; ++i) _reveal(taskId, members[i]);
        _finishPhase(taskId);
        uint256 before = rc.memberOf(taskId, members[1]).stake;
        _declareUnavailable(taskId, _idx(1));
        vm.assertEq(rc.taskState(taskId).survivors, N - 1, "left U");
        vm.assertEq(survivorsOf(rc, taskId, 1).length, N - 1, "U bitmap");
        vm.assertEq(rc.taskState(taskId).expected, N - 1, "one fewer to wait for");
        vm.assertEq(rc.memberOf(taskId, members[1]).stake, before - defaultParams().absenceFee, "the absence fee");
        _expectRevert(abi.encodeWithSelector(RoundCoordinator.NotSurvivor.selector, taskId, 1, members[1]));
        _postUnmask(taskId, members[1]);
        for (uint256 i = 0; i < N; ++i) {
            if (i != 1) _postUnmask(taskId, members[i]);
        }
        rc.advance(taskId);
        _finalize(taskId);
        vm.assertEq(rc.creditOf(taskId, members[1]), 0, "a withholder earns nothing");
        vm.assertGt(rc.creditOf(taskId, members[0]), 0, "the others do");
    }

    function test_declareUnavailable_belowThresholdFailsRound() public {
        uint256 taskId = _taskAt(REVEAL);
        for (uint256 i = 0; i < 3; ++i) _reveal(taskId, members[i]);
        _finishPhase(taskId);
        vm.expectEmit(true, true, false, true, address(rc));
        emit RoundCoordinator.RoundFailed(taskId, 1, UNMASK);
        _declareUnavailable(taskId, _idx(0));
        vm.assertEq(rc.taskState(taskId).round, 2, "next round");
    }

    function test_declareUnavailable_he() public {
        uint256 taskId = _startedTask(heParams(), N);
        for (uint256 i = 0; i < N; ++i) _commit(taskId, members[i]);
        _finishPhase(taskId);
        for (uint256 i = 0; i < N; ++i) _reveal(taskId, members[i]);
        _finishPhase(taskId);
        vm.assertTrue(_phase(taskId) == FINALIZE, "HE: Reveal -> Finalize");
        _expectRevert(abi.encodeWithSelector(RoundCoordinator.AvailabilityPending.selector, taskId, 1));
        _finalize(taskId);
        _declareNone(taskId);
        _finalize(taskId);
        vm.assertEq(rc.taskState(taskId).round, 2, "finalized");
    }

    function test_error_AvailabilityPending() public {
        uint256 taskId = _taskAt(SHAREKEYS);
        for (uint256 i = 0; i < N; ++i) _shareKeys(taskId, members[i]);
        _finishPhase(taskId);
        _expectRevert(abi.encodeWithSelector(RoundCoordinator.AvailabilityPending.selector, taskId, 1));
        _commit(taskId, members[0]);
        _declareNone(taskId);
        for (uint256 i = 0; i < N; ++i) _commit(taskId, members[i]);
        _finishPhase(taskId);
        for (uint256 i = 0; i < N; ++i) _reveal(taskId, members[i]);
        _finishPhase(taskId);
        _expectRevert(abi.encodeWithSelector(RoundCoordinator.AvailabilityPending.selector, taskId, 1));
        _postUnmask(taskId, members[0]);
    }

    function test_error_AvailabilityFixed() public {
        uint256 taskId = _taskAt(COMMIT); // declared once by _taskAt
        _expectRevert(abi.encodeWithSelector(RoundCoordinator.AvailabilityFixed.selector, taskId, 1));
        _declareNone(taskId);
    }

    function test_error_NotWithholdable() public {
        uint256 taskId = _taskAt(SHAREKEYS);
        for (uint256 i = 1; i < N; ++i) _shareKeys(taskId, members[i]); // members[0] posted nothing
        _finishPhase(taskId);
        _expectRevert(abi.encodeWithSelector(RoundCoordinator.NotWithholdable.selector, taskId, 1, 0));
        _declareUnavailable(taskId, _idx(0));
        _expectRevert(abi.encodeWithSelector(RoundCoordinator.NotWithholdable.selector, taskId, 1, uint32(N)));
        _declareUnavailable(taskId, _idx(uint32(N))); // no such member
    }

    function test_error_declareUnavailable_WrongPhaseAndNotAggregator() public {
        uint256 taskId = _taskAt(REVEAL);
        _expectRevert(_wrongPhase(taskId, COMMIT, REVEAL));
        _declareNone(taskId);
        vm.prank(members[0]);
        vm.expectRevert(abi.encodeWithSelector(RoundCoordinator.NotAggregator.selector, taskId, members[0]));
        rc.declareUnavailable(taskId, new uint32[](0));
    }

    function test_register_allowlist() public {
        // a two-leaf StandardMerkleTree: leaf = keccak256(bytes.concat(keccak256(abi.encode(account))))
        bytes32 l0 = keccak256(bytes.concat(keccak256(abi.encode(members[0]))));
        bytes32 l1 = keccak256(bytes.concat(keccak256(abi.encode(members[1]))));
        bytes32 root = l0 < l1 ? keccak256(abi.encode(l0, l1)) : keccak256(abi.encode(l1, l0));
        RoundCoordinator.TaskParams memory p = defaultParams();
        p.allowlistRoot = root;
        uint256 taskId = _createTask(p);
        allowlistProof.push(l1);
        _register(taskId, members[0]); // proof: its sibling
        allowlistProof[0] = l0;
        _register(taskId, members[1]);
        vm.assertEq(keys.participantCount(taskId), 2, "both in");
        _expectRevert(abi.encodeWithSelector(RoundCoordinator.NotAllowed.selector, taskId, members[2]));
        _register(taskId, members[2]); // not in the list, whatever the proof
        allowlistProof.pop();
        _expectRevert(abi.encodeWithSelector(RoundCoordinator.NotAllowed.selector, taskId, members[2]));
        _register(taskId, members[2]);
    }

    function test_absenceFee_charged() public {
        uint256 taskId = _taskAt(SHAREKEYS);
        for (uint256 i = 1; i < N; ++i) _shareKeys(taskId, members[i]); // members[0] skips the round
        _finishPhase(taskId);
        _declareNone(taskId);
        for (uint256 i = 1; i < N; ++i) _commit(taskId, members[i]);
        _finishPhase(taskId);
        for (uint256 i = 1; i < N; ++i) _reveal(taskId, members[i]);
        vm.roll(rc.taskState(taskId).deadline + 1);
        vm.expectEmit(true, true, true, true, address(rc));
        emit RoundCoordinator.AbsenceCharged(taskId, 1, members[0], 10 ether);
        rc.advance(taskId);
        vm.assertEq(rc.memberOf(taskId, members[0]).stake, 90 ether, "fee taken");
        vm.assertEq(rc.slashedOf(taskId), 10 ether, "to the survivors");
    }

    function test_error_Ejected() public {
        RoundCoordinator.TaskParams memory p = defaultParams();
        p.slashAmount = p.stake; // one missed reveal takes everything
        uint256 taskId = _startedTask(p, N);
        _runRound(taskId, N, (1 << N) - 2, true); // members[0] never reveals (MemberEjected)
        vm.assertTrue(rc.memberOf(taskId, members[0]).ejected, "ejected");
        vm.assertEq(rc.taskState(taskId).expected, N - 1, "not waited for");
        _expectRevert(abi.encodeWithSelector(RoundCoordinator.Ejected.selector, taskId, members[0]));
        _shareKeys(taskId, members[0]);
    }

    /// @notice commitmentOf is zero for a member whose bundle was declared unavailable (it
    ///         never committed in the round), not its commitment of an earlier round.
    function test_commitmentOf_sharesWithheldIsZero() public {
        uint256 taskId = _startedTask();
        _runRound(taskId); // round 1: everyone commits
        for (uint256 i = 0; i < N; ++i) _shareKeys(taskId, members[i]);
        _finishPhase(taskId);
        _declareUnavailable(taskId, _idx(0)); // members[0]'s bundle of round 2
        vm.assertEq(rc.commitmentOf(taskId, members[0], 2), bytes32(0), "no commitment in round 2");
    }

    // ------------------------------------------------------------------ challenge window, keepers

    function _windowTask() internal returns (uint256 taskId) {
        RoundCoordinator.TaskParams memory p = defaultParams();
        p.challengeBlocks = 10;
        taskId = _startedTask(p, N);
        _runRound(taskId); // round 1 finalized; its window is open
    }

    function test_flagRound() public {
        uint256 taskId = _windowTask();
        vm.assertEq(rc.creditOf(taskId, members[0]), 0, "nothing claimable in the window");
        vm.expectEmit(true, true, true, true, address(rc));
        emit RoundCoordinator.RoundFlagged(taskId, 1, members[1], 1);
        vm.prank(members[1]);
        rc.flagRound(taskId, 1);
        vm.prank(members[2]);
        rc.flagRound(taskId, 1);
        vm.assertEq(rc.flagsOf(taskId, 1), 2, "two flags");
        vm.roll(block.number + 10);
        vm.assertEq(rc.creditOf(taskId, members[0]), 5 ether, "30 ether / 6 after the window");
        vm.prank(members[0]);
        rc.claimRewards(taskId);
    }

    function test_error_AlreadyFlagged() public {
        uint256 taskId = _windowTask();
        vm.prank(members[1]);
        rc.flagRound(taskId, 1);
        vm.expectRevert(abi.encodeWithSelector(RoundCoordinator.AlreadyFlagged.selector, taskId, 1, members[1]));
        vm.prank(members[1]);
        rc.flagRound(taskId, 1);
    }

    function test_error_NotFlaggable() public {
        uint256 taskId = _windowTask();
        vm.expectRevert(abi.encodeWithSelector(RoundCoordinator.NotFlaggable.selector, taskId, 2));
        vm.prank(members[1]);
        rc.flagRound(taskId, 2); // not finalized
        vm.roll(block.number + 10);
        vm.expectRevert(abi.encodeWithSelector(RoundCoordinator.NotFlaggable.selector, taskId, 1));
        vm.prank(members[1]);
        rc.flagRound(taskId, 1); // window closed
        vm.expectRevert(abi.encodeWithSelector(RoundCoordinator.NotRegistered.selector, taskId, stranger));
        vm.prank(stranger);
        rc.flagRound(taskId, 1);
    }

    function test_error_NothingToWithdraw_inTheWindow() public {
        uint256 taskId = _windowTask();
        vm.expectRevert(abi.encodeWithSelector(RoundCoordinator.NothingToWithdraw.selector, taskId, members[0]));
        vm.prank(members[0]);
        rc.claimRewards(taskId);
    }

    function test_keeperFee_creditedToTheWalker() public {
        RoundCoordinator.TaskParams memory p = defaultParams();
        p.keeperFee = 2 ether;
        uint256 taskId = _startedTask(p, N);
        uint256 pool = rc.poolOf(taskId);
        for (uint256 i = 0; i < N; ++i) _shareKeys(taskId, members[i]);
        _finishPhase(taskId);
        _declareNone(taskId);
        for (uint256 i = 0; i < N; ++i) _commit(taskId, members[i]);
        _finishPhase(taskId);
        for (uint256 i = 0; i < N; ++i) _reveal(taskId, members[i]);
        vm.roll(rc.taskState(taskId).deadline + 1);
        vm.expectEmit(true, true, true, true, address(rc));
        emit RoundCoordinator.KeeperCredited(taskId, 1, stranger, 2 ether);
        vm.prank(stranger);
        rc.advance(taskId); // the end of Reveal: the walk
        vm.assertEq(rc.poolOf(taskId), pool - 2 ether, "from the pool");
        vm.assertEq(rc.creditOf(taskId, stranger), 2 ether, "to the caller");
        uint256 before = token.balanceOf(stranger);
        vm.prank(stranger);
        rc.claimRewards(taskId);
        vm.assertEq(token.balanceOf(stranger), before + 2 ether, "claimed by a non-member");
    }

    function test_error_InvalidParameter_keeperFeeAndChallengeBlocks() public {
        RoundCoordinator.TaskParams memory p = defaultParams();
        p.keeperFee = p.rewardPerRound + 1;
        _expectRevert(abi.encodeWithSelector(RoundCoordinator.InvalidParameter.selector, "keeperFee"));
        _createTask(p);
        p = defaultParams();
        p.challengeBlocks = rc.MIN_PHASE_BLOCKS() - 1;
        _expectRevert(abi.encodeWithSelector(RoundCoordinator.InvalidParameter.selector, "challengeBlocks"));
        _createTask(p);
    }

    // ------------------------------------------------------------------ leaving

    function test_leave() public {
        RoundCoordinator.TaskParams memory p = defaultParams();
        uint256 taskId = _startedTask(p, N); // round 1, ShareKeys
        uint256 before = token.balanceOf(members[0]);
        vm.expectEmit(true, true, true, true, address(rc));
        emit RoundCoordinator.AbsenceCharged(taskId, 1, members[0], p.absenceFee);
        vm.prank(members[0]);
        rc.leave(taskId);
        vm.prank(members[0]);
        rc.withdrawStake(taskId); // at once, before the task ends
        vm.assertEq(token.balanceOf(members[0]), before + p.stake - p.absenceFee, "stake less the fee");
        vm.assertTrue(rc.memberOf(taskId, members[0]).ejected, "ejected");
        vm.assertEq(rc.taskState(taskId).expected, N - 1, "ShareKeys stops waiting for it");
        vm.assertEq(rc.slashedOf(taskId), p.absenceFee, "the fee goes to survivors");
    }

    function test_error_CannotLeaveNow() public {
        uint256 taskId = _startedTask();
        for (uint256 i = 0; i < N; ++i) _shareKeys(taskId, members[i]);
        _finishPhase(taskId);
        _declareNone(taskId);
        _commit(taskId, members[0]);
        vm.expectRevert(abi.encodeWithSelector(RoundCoordinator.CannotLeaveNow.selector, taskId, 1, members[0]));
        vm.prank(members[0]);
        rc.leave(taskId);
    }
}
