// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {vm} from "./utils/Vm.sol";
import {CoordinatorBase, survivorsOf, statusIn, cidOf} from "./Base.sol";
import {RoundCoordinator} from "../../src/RoundCoordinator.sol";

/// @notice Fuzz tests of the accounting (stake, slash, pool, bond, credits, claims) and of
///         the commitment's binding.
contract FuzzTest is CoordinatorBase {
    // ================================================================== commitment

    /// @notice commitmentFor binds chain id, coordinator, task, round, sender, cid and salt:
    ///         changing any one of them changes the commitment.
    function testFuzz_commitmentBindsEveryField(
        uint256 taskId,
        uint32 round,
        address sender,
        bytes calldata cid,
        bytes32 salt,
        uint8 which,
        uint256 other
    ) public {
        bytes32 c = rc.commitmentFor(taskId, round, sender, cid, salt);
        vm.assertEq(
            c,
            keccak256(abi.encode(block.chainid, address(rc), taskId, round, sender, keccak256(cid), salt)),
            "the documented preimage"
        );
        which = uint8(bound(which, 0, 6));
        bytes32 d;
        if (which == 0) {
            uint256 id = bound(other, 1, type(uint64).max);
            vm.assume(id != block.chainid);
            vm.chainId(id);
            d = rc.commitmentFor(taskId, round, sender, cid, salt);
        } else if (which == 1) {
            RoundCoordinator other_ = new RoundCoordinator(token); // another deployment
            d = other_.commitmentFor(taskId, round, sender, cid, salt);
        } else if (which == 2) {
            vm.assume(other != taskId);
            d = rc.commitmentFor(other, round, sender, cid, salt);
        } else if (which == 3) {
            vm.assume(uint32(other) != round);
            d = rc.commitmentFor(taskId, uint32(other), sender, cid, salt);
        } else if (which == 4) {
            vm.assume(address(uint160(other)) != sender);
            d = rc.commitmentFor(taskId, round, address(uint160(other)), cid, salt);
        } else if (which == 5) {
            bytes memory cid2 = abi.encodePacked(cid, uint8(other));
            d = rc.commitmentFor(taskId, round, sender, cid2, salt);
        } else {
            vm.assume(bytes32(other) != salt);
            d = rc.commitmentFor(taskId, round, sender, cid, bytes32(other));
        }
        vm.assertNotEq(c, d, "a changed field kept the commitment");
    }

    /// @notice A commitment copied from another member opens for nobody but its maker: the
    ///         copier's reveal with the maker's cid and salt fails.
    function testFuzz_revealByAnotherSenderFails(bytes calldata label, bytes32 salt, uint8 maker, uint8 copier) public {
        bytes memory cid = cidOf(label);
        maker = uint8(bound(maker, 0, N - 1));
        copier = uint8(bound(copier, 0, N - 1));
        vm.assume(maker != copier);
        uint256 taskId = _startedTask(heParams(), N);
        address a = members[maker];
        address b = members[copier];
        bytes32 c = rc.commitmentFor(taskId, 1, a, cid, salt);
        vm.prank(a);
        rc.commit(taskId, c);
        vm.prank(b);
        rc.commit(taskId, c); // b copies a's commitment
        _finishPhase(taskId);
        vm.prank(b);
        vm.expectRevert(abi.encodeWithSelector(RoundCoordinator.RevealMismatch.selector, taskId, 1, b));
        rc.reveal(taskId, cid, salt);
        vm.prank(a);
        rc.reveal(taskId, cid, salt);
        vm.assertTrue(statusIn(rc, taskId, a) == RoundCoordinator.Status.Revealed, "the maker opens it");
    }

    /// @notice A commitment of round r does not open in round r + 1.
    function testFuzz_revealInAnotherRoundFails(bytes calldata label, bytes32 salt) public {
        bytes memory cid = cidOf(label);
        uint256 taskId = _startedTask(heParams(), N);
        bytes32 c = rc.commitmentFor(taskId, 2, members[0], cid, salt); // made for round 2
        vm.prank(members[0]);
        rc.commit(taskId, c);
        _finishPhase(taskId);
        vm.prank(members[0]);
        vm.expectRevert(abi.encodeWithSelector(RoundCoordinator.RevealMismatch.selector, taskId, 1, members[0]));
        rc.reveal(taskId, cid, salt);
    }

    // ================================================================== accounting

    struct Amounts {
        uint128 stake;
        uint128 slashAmount;
        uint128 rewardPool;
        uint128 rewardPerRound;
        uint128 bond;
        uint128 absenceFee;
    }

    function _params(Amounts memory x) internal view returns (RoundCoordinator.TaskParams memory p) {
        p = defaultParams();
        p.threshold = 2;
        p.minParticipants = 2;
        p.stake = x.stake;
        p.slashAmount = x.slashAmount;
        p.rewardPool = x.rewardPool;
        p.rewardPerRound = x.rewardPerRound;
        p.aggregatorBond = x.bond;
        p.absenceFee = x.absenceFee;
    }

    function _bound(Amounts memory x) internal pure returns (Amounts memory) {
        x.stake = uint128(bound(x.stake, 0, 10_000 ether));
        x.slashAmount = uint128(bound(x.slashAmount, 0, x.stake));
        x.rewardPool = uint128(bound(x.rewardPool, 0, 100_000 ether));
        x.rewardPerRound = uint128(bound(x.rewardPerRound, 0, x.rewardPool));
        x.bond = uint128(bound(x.bond, 0, 10_000 ether));
        x.absenceFee = uint128(bound(x.absenceFee, 0, x.slashAmount));
        return x;
    }

    /// @notice One round with `n` members of whom those in `revealMask` reveal: the
    ///         non-revealers lose exactly min(stake, slashAmount), the survivors are credited
    ///         (reward + slashed) / |U| each, the pool pays at most rewardPerRound, the books
    ///         match the balance, and after the task every token comes out exactly once.
    function testFuzz_roundAccounting(Amounts memory x, uint8 n, uint8 revealMask, bool finalize) public {
        x = _bound(x);
        n = uint8(bound(n, 2, N));
        uint256 mask = revealMask & ((1 << n) - 1);
        RoundCoordinator.TaskParams memory p = _params(x);
        p.numRounds = 1;
        uint256 supply = token.totalSupply();
        uint256 taskId = _startedTask(p, n);
        vm.assertEq(token.balanceOf(address(rc)), uint256(x.rewardPool) + x.bond + uint256(x.stake) * n, "deposits");

        _runRound(taskId, n, mask, finalize);
        vm.assertTrue(_phase(taskId) == RoundCoordinator.Phase.Ended, "one round, then the end");
        _checkRound(taskId, x, n, mask, finalize);
        _drain(taskId, n);
        vm.assertEq(token.balanceOf(address(rc)), rc.slashedOf(taskId), "only the burned slashed stake stays");
        vm.assertEq(token.totalSupply(), supply, "supply conserved");
    }

    function _checkRound(uint256 taskId, Amounts memory x, uint256 n, uint256 mask, bool finalize) internal view {
        uint256 survivors;
        uint256 slashed;
        for (uint256 i = 0; i < n; ++i) {
            uint256 stake = rc.memberOf(taskId, members[i]).stake;
            if (mask & (1 << i) != 0) {
                survivors++;
                vm.assertEq(stake, x.stake, "a survivor keeps its stake");
            } else {
                vm.assertEq(stake, x.stake - x.slashAmount, "a non-revealer loses slashAmount");
                slashed += x.slashAmount;
            }
        }
        uint256 credits;
        for (uint256 i = 0; i < n; ++i) credits += rc.creditOf(taskId, members[i]);
        if (survivors >= 2 && finalize) {
            uint256 per = (uint256(x.rewardPerRound) + slashed) / survivors;
            vm.assertEq(rc.creditOf(taskId, members[_firstSurvivor(mask)]), per, "credit per survivor");
            vm.assertEq(credits, per * survivors, "credits");
            vm.assertLe(x.rewardPool - rc.poolOf(taskId), x.rewardPerRound, "pool pays at most rewardPerRound");
            vm.assertEq(rc.bondOf(taskId), x.bond, "bond kept");
        } else if (survivors >= 2 && x.bond != 0) {
            vm.assertEq(rc.bondOf(taskId), 0, "bond forfeited");
            vm.assertEq(credits, (x.bond / survivors) * survivors, "bond credited to U");
            vm.assertEq(rc.poolOf(taskId), x.rewardPool, "pool untouched");
        } else {
            vm.assertEq(credits, 0, "no credit without a finalized or forfeited round");
        }
        vm.assertEq(token.balanceOf(address(rc)), _owed(taskId, keys.participants(taskId)), "balance == books");
    }

    /// @dev Everyone takes out what it may: claims, stakes, the pool, the bond.
    function _drain(uint256 taskId, uint256 n) internal {
        for (uint256 i = 0; i < n; ++i) {
            _claimIfAny(taskId, members[i]);
            _withdrawStakeIfAny(taskId, members[i]);
        }
        if (rc.poolOf(taskId) != 0) {
            vm.prank(owner);
            rc.withdrawPool(taskId);
        }
        if (rc.bondOf(taskId) != 0) {
            vm.prank(aggregator);
            rc.withdrawBond(taskId);
        }
    }

    function _firstSurvivor(uint256 mask) internal pure returns (uint256 i) {
        while (mask & (1 << i) == 0) ++i;
    }

    function _claimIfAny(uint256 taskId, address a) internal {
        uint256 credit = rc.creditOf(taskId, a);
        if (credit == 0) return;
        uint256 before = token.balanceOf(a);
        vm.prank(a);
        rc.claimRewards(taskId);
        vm.assertEq(token.balanceOf(a) - before, credit, "claim pays the credit");
        vm.prank(a);
        vm.expectRevert(abi.encodeWithSelector(RoundCoordinator.NothingToWithdraw.selector, taskId, a));
        rc.claimRewards(taskId); // never twice
    }

    function _withdrawStakeIfAny(uint256 taskId, address a) internal {
        uint256 stake = rc.memberOf(taskId, a).stake;
        if (stake == 0) return;
        uint256 before = token.balanceOf(a);
        vm.prank(a);
        rc.withdrawStake(taskId);
        vm.assertEq(token.balanceOf(a) - before, stake, "stake back");
    }

    /// @notice Over several rounds with claims at random times, what members were paid plus
    ///         what they are still owed is exactly what left pool, bond and slashed stake.
    function testFuzz_claimTimingDoesNotMatter(Amounts memory x, uint8 rounds, uint256 masks, uint256 claimAt)
        public
    {
        x = _bound(x);
        rounds = uint8(bound(rounds, 1, 4));
        RoundCoordinator.TaskParams memory p = _params(x);
        p.numRounds = rounds;
        uint256 taskId = _startedTask(p, N);
        uint256[N] memory early;
        for (uint256 r = 0; r < rounds; ++r) {
            _runRound(taskId, N, (masks >> (8 * r)) & ((1 << N) - 1), (masks >> (200 + r)) & 1 == 1);
            for (uint256 i = 0; i < N; ++i) {
                if ((claimAt >> (r * N + i)) & 1 == 1) {
                    uint256 credit = rc.creditOf(taskId, members[i]);
                    if (credit == 0) continue;
                    vm.prank(members[i]);
                    rc.claimRewards(taskId);
                    early[i] += credit;
                }
            }
            vm.assertEq(token.balanceOf(address(rc)), _owed(taskId, members), "balance == books");
        }
        // what came out of pool, bond and slashing is what was paid (early or still owed)
        uint256 paid;
        for (uint256 i = 0; i < N; ++i) paid += early[i] + rc.creditOf(taskId, members[i]);
        uint256 outOfPool = uint256(x.rewardPool) - rc.poolOf(taskId);
        uint256 bondOut = uint256(x.bond) - rc.bondOf(taskId);
        uint256 slashedIn;
        for (uint256 i = 0; i < N; ++i) slashedIn += x.stake - rc.memberOf(taskId, members[i]).stake;
        vm.assertEq(paid + rc.slashedOf(taskId), outOfPool + bondOut + slashedIn, "paid == pool + bond + slashed out");
    }

    /// @notice createTask refuses stakes whose sum with pool and bond exceeds the uint128
    ///         books, and accepts any that fit; the reveal close cannot overflow `slashed`.
    function testFuzz_createTaskBounds(uint128 stake, uint128 pool, uint128 bond, uint32 maxP) public {
        maxP = uint32(bound(maxP, 3, 512));
        RoundCoordinator.TaskParams memory p = defaultParams();
        p.maxParticipants = maxP;
        p.stake = stake;
        p.slashAmount = stake;
        p.rewardPool = pool;
        p.rewardPerRound = 0;
        p.aggregatorBond = bond;
        p.absenceFee = 0;
        token.mint(owner, pool);
        bool fits = uint256(stake) * maxP + pool + bond <= type(uint128).max;
        if (!fits) {
            _expectRevert(abi.encodeWithSelector(RoundCoordinator.InvalidParameter.selector, "stake"));
            _createTask(p);
        } else {
            uint256 taskId = _createTask(p);
            vm.assertEq(rc.poolOf(taskId), pool, "pool");
        }
    }
}
