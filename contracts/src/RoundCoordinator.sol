// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {ReentrancyGuard} from "@openzeppelin/contracts/utils/ReentrancyGuard.sol";
import {MerkleProof} from "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol";
import {KeyRegistry} from "./KeyRegistry.sol";
import {ModelRegistry} from "./ModelRegistry.sol";

/// @title RoundCoordinator
/// @notice Runs secure-aggregation tasks on chain: registration with stake, then per round
///         ShareKeys -> Commit -> Reveal -> Unmask -> Finalize. Only CIDs (in events) and
///         hashes (in storage) are on chain; the bulk lives in content-addressed storage.
///
///         The valid reveals of a round are its survivor set U. U is fixed on chain and the
///         same for everyone, so the aggregator cannot lie about who dropped out (this
///         replaces SecAgg's consistency round).
///
///         Data availability: blobs live off chain, and a member can post the CID of a blob
///         it serves to some parties and not to others. So that everyone still acts on one
///         view, the aggregator fixes on chain, once per stage, which posted blobs it could
///         not fetch (`declareUnavailable`): the share bundles before any commit is accepted,
///         the revealed inputs before any unmask share is accepted (or, without an Unmask
///         phase, before the model is). Those members are out of the round for everyone:
///         a withheld bundle cannot commit, a withheld input leaves U and earns nothing.
///         Every honest client derives its unmask answer from this one on-chain U, so it
///         never reveals both kinds of share for a member, whatever anyone serves to whom. Unmasking shares are accepted from members of
///         U only. Survivors of a finalized round share the round's reward; participants who
///         committed but never revealed are slashed, and what they lose goes to the survivors
///         of the next finalized round (never to the owner, who sets the rules: slashing must
///         not pay the one who can provoke it). Slashed stake that no later round pays out
///         stays locked in the contract when the task ends (burned).
///
/// @dev Phases end when their deadline block has passed or when everyone who may act in them
///      has acted; anyone may then call `advance`. Every phase change emits `PhaseChanged`.
///      Gas: a participant's per-round state (status, stake) is one slot and its commitment
///      another, both written non-zero at registration, so the per-round writes are
///      non-zero -> non-zero (see GAS.md).
contract RoundCoordinator is ReentrancyGuard {
    using SafeERC20 for IERC20;

    enum Phase {
        None,
        Registration,
        ShareKeys,
        Commit,
        Reveal,
        Unmask,
        Finalize,
        Ended
    }

    /// @dev A participant's progress in the round `Member.round`; read as `None` in any other.
    ///      `SharesWithheld` / `InputWithheld`: the aggregator declared its share bundle / its
    ///      revealed input unavailable (`declareUnavailable`); the latter is out of U.
    enum Status {
        None,
        Shared,
        Committed,
        Revealed,
        Unmasked,
        Slashed,
        SharesWithheld,
        InputWithheld
    }

    /// @dev What the aggregator has fixed of the round's data availability (declared once each).
    enum Availability {
        Open,
        SharesFixed,
        InputsFixed,
        UnmasksFixed
    }

    /// @notice The loop over participants that runs when a reveal phase closes is the only
    ///         per-participant loop in a transaction; this cap keeps it far below the
    ///         per-transaction gas cap (GAS.md).
    uint32 public constant MAX_PARTICIPANTS = 512;

    /// @notice A claim walks the rounds finalized since the caller's last claim; this cap
    ///         bounds that walk (about 4.3k gas per round).
    uint32 public constant MAX_ROUNDS = 1000;

    /// @notice Bounds on every phase length that `createTask` accepts: a phase shorter than
    ///         the minimum leaves honest participants too little time to act (and be slashed
    ///         for it); one longer than the maximum (two weeks of 12 s blocks) freezes stakes.
    uint32 public constant MIN_PHASE_BLOCKS = 5;
    uint32 public constant MAX_PHASE_BLOCKS = 100_800;

    bytes32 private constant PLACEHOLDER = bytes32(uint256(1));

    struct TaskParams {
        bytes32 protocolId; // e.g. "secaggplus" as bytes32
        bytes32 paramsHash; // hash of the canonical protocol config
        address aggregator;
        uint32 minParticipants; // registrations needed to start round 1
        uint32 maxParticipants;
        uint32 threshold; // a round needs >= threshold shares, commits and reveals
        uint32 numRounds;
        uint32 registrationBlocks;
        uint32 shareBlocks; // 0: no ShareKeys phase (HE tasks)
        uint32 commitBlocks;
        uint32 revealBlocks;
        uint32 unmaskBlocks; // 0: no Unmask phase (HE tasks)
        uint32 finalizeBlocks;
        uint128 stake;
        uint128 slashAmount; // taken from the stake of one who commits and never reveals (<= stake)
        uint128 rewardPerRound; // split equally among the survivors of each finalized round
        uint128 rewardPool; // deposited by the owner at creation
        uint128 aggregatorBond; // posted by the aggregator in Registration (0: no bond)
        uint128 absenceFee; // taken from a member who skips a round's first phase (<= slashAmount)
        bytes32 allowlistRoot; // Merkle root of the accounts allowed to register (0: anyone)
        uint128 keeperFee; // from the pool to whoever runs a round's walk over the members (<= rewardPerRound)
        uint32 challengeBlocks; // after a finalize, members may flag the round; rewards wait (0: none)
    }

    /// @dev One slot, read (and mostly written) by every participant call.
    struct State {
        Phase phase;
        uint32 round;
        uint64 deadline; // last block in which the phase accepts submissions
        uint32 expected; // how many may act in this phase (0: it runs to its deadline)
        uint32 acted; // how many did (registrations, share bundles, unmask posts)
        uint32 survivors; // |U| of the current round, fixed when Reveal closes
        bool hasShareKeys;
        uint32 lastPaid; // the latest round that recorded a payout to its U (0: none yet)
        bool unmaskComplete; // every member of U posted its unmask shares this round
        Availability availability; // what the aggregator has fixed this round
    }

    struct Task {
        TaskParams params;
        address owner;
        uint128 pool; // the owner's deposit not yet paid out
        uint128 slashed; // slashed stake not yet paid out: the next finalized round's survivors'
        uint128 bond; // the aggregator's bond still held
        uint32 ejected; // members whose stake slashing and absence fees took to zero
        State state;
    }

    /// @dev One slot: index (1-based, 0 = not registered), round of `status`, stake, the
    ///      last round whose reward the member has claimed, and whether it was ejected (its
    ///      stake reached zero: it can no longer act in the task).
    struct Member {
        uint32 index;
        uint32 round;
        Status status;
        uint128 stake;
        uint32 claimedThrough;
        bool ejected;
    }

    error UnknownTask(uint256 taskId);
    error InvalidParameter(string name);
    error WrongPhase(uint256 taskId, Phase expected, Phase actual);
    error DeadlinePassed(uint256 taskId, uint64 deadline);
    error PhaseStillOpen(uint256 taskId, uint64 deadline);
    error NotRegistered(uint256 taskId, address account);
    error AlreadyRegistered(uint256 taskId, address account);
    error TaskFull(uint256 taskId, uint32 maxParticipants);
    error InsufficientStake(uint256 required, uint256 allowance, uint256 balance);
    error InsufficientFunds(uint256 required, uint256 allowance, uint256 balance);
    error DuplicateSubmission(uint256 taskId, uint32 round, address account);
    error SharesMissing(uint256 taskId, uint32 round, address account);
    error DuplicateCommit(uint256 taskId, uint32 round, address account);
    error NotCommitted(uint256 taskId, uint32 round, address account);
    error RevealMismatch(uint256 taskId, uint32 round, address account);
    error NotSurvivor(uint256 taskId, uint32 round, address account);
    error NotAggregator(uint256 taskId, address account);
    error NotTaskOwner(uint256 taskId, address account);
    error NothingToWithdraw(uint256 taskId, address account);
    error UnsupportedToken(address token, uint256 expected, uint256 received);
    error BondAlreadyPosted(uint256 taskId);
    error NotAllowed(uint256 taskId, address account);
    error Ejected(uint256 taskId, address account);
    error AvailabilityPending(uint256 taskId, uint32 round);
    error AvailabilityFixed(uint256 taskId, uint32 round);
    error NotWithholdable(uint256 taskId, uint32 round, uint32 index);
    error BlobWithheld(uint256 taskId, uint32 round, address account);
    error NotFlaggable(uint256 taskId, uint32 round);
    error CannotLeaveNow(uint256 taskId, uint32 round, address account);
    error MalformedCid(bytes cid);
    error AggregatorCannotJoin(uint256 taskId);
    error AlreadyFlagged(uint256 taskId, uint32 round, address account);

    event TaskCreated(
        uint256 indexed taskId, address indexed owner, address indexed aggregator, bytes32 protocolId, bytes32 paramsHash
    );
    event Registered(
        uint256 indexed taskId, address indexed participant, uint32 index, bytes32 agreementKey, bytes heContextCid
    );
    event PhaseChanged(uint256 indexed taskId, uint32 indexed round, Phase phase, uint64 deadline);
    event SharesPosted(
        uint256 indexed taskId, uint32 indexed round, address indexed participant, bytes32 maskingKey, bytes bundleCid
    );
    event Committed(uint256 indexed taskId, uint32 indexed round, address indexed participant, bytes32 commitment);
    event Revealed(uint256 indexed taskId, uint32 indexed round, address indexed participant, bytes cid);
    event UnmaskPosted(uint256 indexed taskId, uint32 indexed round, address indexed participant, bytes cid);
    event Slashed(uint256 indexed taskId, uint32 indexed round, address indexed participant, uint256 amount);
    event AbsenceCharged(uint256 indexed taskId, uint32 indexed round, address indexed participant, uint256 amount);
    event MemberEjected(uint256 indexed taskId, uint32 indexed round, address indexed participant);
    event RoundFlagged(uint256 indexed taskId, uint32 indexed round, address indexed member, uint32 flags);
    event KeeperCredited(uint256 indexed taskId, uint32 indexed round, address indexed keeper, uint256 amount);
    event Unavailable(uint256 indexed taskId, uint32 indexed round, Phase phase, uint32[] withheld);
    event RoundFailed(uint256 indexed taskId, uint32 indexed round, Phase phase);
    event RoundFinalized(uint256 indexed taskId, uint32 indexed round, uint32 survivors, uint256 rewardPerSurvivor);
    event SlashedStakeBurned(uint256 indexed taskId, uint256 amount);
    event BondPosted(uint256 indexed taskId, address indexed aggregator, uint256 amount);
    event BondForfeited(uint256 indexed taskId, uint32 indexed round, uint256 rewardPerSurvivor);
    event BondWithdrawn(uint256 indexed taskId, address indexed aggregator, uint256 amount);
    event TaskEnded(uint256 indexed taskId, uint32 round);
    event RewardClaimed(uint256 indexed taskId, address indexed participant, uint256 amount);
    event StakeWithdrawn(uint256 indexed taskId, address indexed participant, uint256 amount);
    event PoolWithdrawn(uint256 indexed taskId, address indexed owner, uint256 amount);

    IERC20 public immutable token;
    KeyRegistry public immutable keyRegistry;
    ModelRegistry public immutable modelRegistry;
    uint256 public taskCount;

    mapping(uint256 taskId => Task) private _tasks;
    mapping(uint256 taskId => mapping(address account => Member)) private _members;
    mapping(uint256 taskId => mapping(address account => bytes32)) private _commitments;
    /// @dev Per paid round: the amount per survivor (low 128 bits) and the first block from
    ///      which it can be claimed (the end of the challenge window; high bits).
    mapping(uint256 taskId => mapping(uint32 round => uint256)) private _payouts;
    mapping(uint256 taskId => mapping(uint32 round => uint32)) private _flags;
    mapping(uint256 taskId => mapping(uint32 round => mapping(address account => bool))) private _flagged;
    mapping(uint256 taskId => mapping(address account => uint256)) private _keeperCredit;
    mapping(uint256 taskId => mapping(uint32 round => uint256[])) private _survivorBits;

    constructor(IERC20 token_) {
        token = token_;
        keyRegistry = new KeyRegistry();
        modelRegistry = new ModelRegistry();
    }

    // ------------------------------------------------------------------ task owner

    /// @notice Creates a task, deposits `p.rewardPool` from the caller and records the initial
    ///         model (round 0). Returns the task id (1, 2, ...).
    function createTask(TaskParams calldata p, bytes calldata initialModelCid, bytes32 initialModelSha256)
        external
        nonReentrant
        returns (uint256 taskId)
    {
        _checkParams(p);
        _requireCid(initialModelCid);
        _checkFunds(p.rewardPool, false);
        taskId = ++taskCount;
        Task storage t = _tasks[taskId];
        t.params = p;
        t.owner = msg.sender;
        t.pool = p.rewardPool;
        t.state.hasShareKeys = p.shareBlocks != 0;
        emit TaskCreated(taskId, msg.sender, p.aggregator, p.protocolId, p.paramsHash);
        modelRegistry.record(taskId, 0, initialModelCid, initialModelSha256);
        _open(taskId, t.state, Phase.Registration, p.registrationBlocks, p.maxParticipants);
        _pull(p.rewardPool);
    }

    /// @notice After the task ended: the owner takes back what is left of the pool
    ///         (unpaid rounds and the remainders of reward divisions; never slashed stake).
    function withdrawPool(uint256 taskId) external nonReentrant {
        Task storage t = _task(taskId);
        if (msg.sender != t.owner) revert NotTaskOwner(taskId, msg.sender);
        _requirePhase(taskId, t.state, Phase.Ended);
        uint256 amount = t.pool;
        if (amount == 0) revert NothingToWithdraw(taskId, msg.sender);
        t.pool = 0;
        emit PoolWithdrawn(taskId, msg.sender, amount);
        token.safeTransfer(msg.sender, amount);
    }

    // ------------------------------------------------------------------ aggregator's bond

    /// @notice Registration: the task's aggregator posts its bond (`aggregatorBond`; approve
    ///         the coordinator first). Without it the task ends when Registration closes. The
    ///         bond is forfeited to a round's survivors if that round's unmask was complete
    ///         and no model was finalized in time, and comes back after the task ends.
    function postBond(uint256 taskId) external nonReentrant {
        Task storage t = _task(taskId);
        if (msg.sender != t.params.aggregator) revert NotAggregator(taskId, msg.sender);
        _requireOpen(taskId, t.state, Phase.Registration);
        uint128 amount = t.params.aggregatorBond;
        if (amount == 0 || t.bond != 0) revert BondAlreadyPosted(taskId);
        _checkFunds(amount, false);
        t.bond = amount;
        emit BondPosted(taskId, msg.sender, amount);
        _pull(amount);
    }

    /// @notice After the task ended: the aggregator takes back what is left of its bond.
    function withdrawBond(uint256 taskId) external nonReentrant {
        Task storage t = _task(taskId);
        if (msg.sender != t.params.aggregator) revert NotAggregator(taskId, msg.sender);
        _requirePhase(taskId, t.state, Phase.Ended);
        uint256 amount = t.bond;
        if (amount == 0) revert NothingToWithdraw(taskId, msg.sender);
        t.bond = 0;
        emit BondWithdrawn(taskId, msg.sender, amount);
        token.safeTransfer(msg.sender, amount);
    }

    // ------------------------------------------------------------------ participants

    /// @notice Registers the caller for a task with its public keys, locking the task's stake
    ///         (approve the coordinator for it first). The keys are bound to `msg.sender`.
    ///         A task with an allowlist takes only accounts in it: `proof` is the Merkle proof
    ///         of the leaf keccak256(keccak256(abi.encode(account))) under `allowlistRoot`
    ///         (OpenZeppelin's StandardMerkleTree; empty for open tasks).
    function register(uint256 taskId, bytes32 agreementKey, bytes calldata heContextCid, bytes32[] calldata proof)
        external
        nonReentrant
    {
        Task storage t = _task(taskId);
        State storage s = t.state;
        _requireOpen(taskId, s, Phase.Registration);
        Member storage m = _members[taskId][msg.sender];
        if (m.index != 0) revert AlreadyRegistered(taskId, msg.sender);
        if (s.acted >= t.params.maxParticipants) revert TaskFull(taskId, t.params.maxParticipants);
        if (heContextCid.length != 0) _requireCid(heContextCid);
        if (msg.sender == t.params.aggregator) revert AggregatorCannotJoin(taskId);
        bytes32 root = t.params.allowlistRoot;
        if (root != bytes32(0)) {
            bytes32 leaf = keccak256(bytes.concat(keccak256(abi.encode(msg.sender))));
            if (!MerkleProof.verifyCalldata(proof, root, leaf)) revert NotAllowed(taskId, msg.sender);
        }
        uint128 stake = t.params.stake;
        _checkFunds(stake, true);
        uint32 index = keyRegistry.record(taskId, msg.sender, agreementKey, heContextCid);
        _members[taskId][msg.sender] = Member(index, 0, Status.None, stake, 0, false);
        _commitments[taskId][msg.sender] = PLACEHOLDER;
        s.acted += 1;
        emit Registered(taskId, msg.sender, index, agreementKey, heContextCid);
        _pull(stake);
    }

    /// @notice ShareKeys: posts this round's masking public key s_u^PK and the CID of the
    ///         caller's AEAD-encrypted share bundle (one entry per neighbour).
    function shareKeys(uint256 taskId, bytes32 maskingKey, bytes calldata bundleCid) external {
        (State storage s, Member storage m, uint32 round, Status current) = _caller(taskId, Phase.ShareKeys);
        if (current != Status.None) revert DuplicateSubmission(taskId, round, msg.sender);
        _requireCid(bundleCid);
        m.round = round;
        m.status = Status.Shared;
        s.acted += 1;
        emit SharesPosted(taskId, round, msg.sender, maskingKey, bundleCid);
    }

    /// @notice Commit: posts the commitment to the masked input's CID (see `commitmentFor`).
    ///         With a ShareKeys phase, only once the aggregator has fixed which bundles were
    ///         unavailable, and only by a member whose bundle was not among them.
    function commit(uint256 taskId, bytes32 commitment) external {
        (State storage s, Member storage m, uint32 round, Status current) = _caller(taskId, Phase.Commit);
        if (current == Status.SharesWithheld) revert BlobWithheld(taskId, round, msg.sender);
        if (current >= Status.Committed) revert DuplicateCommit(taskId, round, msg.sender);
        if (s.hasShareKeys) {
            if (s.availability != Availability.SharesFixed) revert AvailabilityPending(taskId, round);
            if (current != Status.Shared) revert SharesMissing(taskId, round, msg.sender);
        }
        m.round = round;
        m.status = Status.Committed;
        _commitments[taskId][msg.sender] = commitment;
        emit Committed(taskId, round, msg.sender, commitment);
    }

    /// @notice Reveal: opens the commitment. A valid reveal puts the caller in U.
    function reveal(uint256 taskId, bytes calldata cid, bytes32 salt) external {
        (, Member storage m, uint32 round, Status current) = _caller(taskId, Phase.Reveal);
        if (current == Status.Revealed) revert DuplicateSubmission(taskId, round, msg.sender);
        if (current != Status.Committed) revert NotCommitted(taskId, round, msg.sender);
        _requireCid(cid);
        if (commitmentFor(taskId, round, msg.sender, cid, salt) != _commitments[taskId][msg.sender]) {
            revert RevealMismatch(taskId, round, msg.sender);
        }
        m.status = Status.Revealed;
        emit Revealed(taskId, round, msg.sender, cid);
    }

    /// @notice Unmask: a member of U posts the CID of its unmasking shares (self-mask seed
    ///         shares for members of U, masking-key shares for neighbours not in U), once the
    ///         aggregator has fixed which revealed inputs were unavailable (they left U).
    function postUnmask(uint256 taskId, bytes calldata cid) external {
        (State storage s, Member storage m, uint32 round, Status current) = _caller(taskId, Phase.Unmask);
        if (s.availability != Availability.InputsFixed) revert AvailabilityPending(taskId, round);
        if (current == Status.Unmasked) revert DuplicateSubmission(taskId, round, msg.sender);
        if (current != Status.Revealed) revert NotSurvivor(taskId, round, msg.sender);
        _requireCid(cid);
        m.status = Status.Unmasked;
        s.acted += 1;
        emit UnmaskPosted(taskId, round, msg.sender, cid);
    }

    /// @notice Pays the caller what it earned in the rounds paid since its last claim whose
    ///         challenge window has passed (any time): for each round whose U holds the caller,
    ///         the round's reward per survivor (or, for a round the aggregator failed to
    ///         finalize, its forfeited bond's share); plus the keeper fees credited to it.
    function claimRewards(uint256 taskId) external nonReentrant {
        Task storage t = _task(taskId);
        Member storage m = _members[taskId][msg.sender];
        (uint256 amount, uint32 through) = _earned(taskId, m, t.state.lastPaid);
        amount += _keeperCredit[taskId][msg.sender];
        if (amount == 0) revert NothingToWithdraw(taskId, msg.sender);
        if (m.index != 0) m.claimedThrough = through;
        _keeperCredit[taskId][msg.sender] = 0;
        emit RewardClaimed(taskId, msg.sender, amount);
        token.safeTransfer(msg.sender, amount);
    }

    /// @notice The escape hatch, for a member of a task that no longer makes progress (or that
    ///         it no longer wants to serve): after Registration and before the end, it pays the
    ///         absence fee and is ejected (it can no longer act; what it earned stays
    ///         claimable), and may `withdrawStake` at once. Not while its commitment of the
    ///         current round is unopened (that would escape the slash for not revealing), nor
    ///         as a member of U in Unmask (that would keep the unmask from being complete).
    function leave(uint256 taskId) external {
        Task storage t = _task(taskId);
        State storage s = t.state;
        Member storage m = _members[taskId][msg.sender];
        uint32 round = s.round;
        bool current = m.round == round;
        if (s.phase == Phase.Registration || s.phase == Phase.Ended) revert WrongPhase(taskId, Phase.ShareKeys, s.phase);
        if (m.index == 0) revert NotRegistered(taskId, msg.sender);
        if (m.ejected) revert Ejected(taskId, msg.sender);
        if (current && (m.status == Status.Committed || (m.status == Status.Revealed && s.phase == Phase.Unmask))) {
            revert CannotLeaveNow(taskId, round, msg.sender);
        }
        if (s.phase == Phase.ShareKeys && !current) s.expected -= 1; // ShareKeys stops waiting for it
        _fine(taskId, t, m, msg.sender);
        if (!m.ejected) _eject(taskId, t, m, msg.sender); // unless the fee took the whole stake
    }

    /// @notice After the task ended, or once the caller left it (`leave`): returns the caller's
    ///         stake, less what was slashed.
    function withdrawStake(uint256 taskId) external nonReentrant {
        Task storage t = _task(taskId);
        Member storage m = _members[taskId][msg.sender];
        if (!m.ejected) _requirePhase(taskId, t.state, Phase.Ended);
        uint256 amount = m.stake;
        if (amount == 0) revert NothingToWithdraw(taskId, msg.sender);
        m.stake = 0;
        emit StakeWithdrawn(taskId, msg.sender, amount);
        token.safeTransfer(msg.sender, amount);
    }

    // ------------------------------------------------------------------ aggregator

    /// @notice Finalize: the task's aggregator posts the aggregate's CID and sha256. The
    ///         round's reward and the slashed stake not yet paid out are split equally among
    ///         U (what does not divide stays for the next round); the next round (or the end)
    ///         begins. Constant gas: each survivor's share is computed when it claims, from
    ///         the round's U bitmap and the amount per survivor recorded here.
    function finalizeRound(uint256 taskId, bytes calldata modelCid, bytes32 modelSha256) external {
        Task storage t = _task(taskId);
        if (msg.sender != t.params.aggregator) revert NotAggregator(taskId, msg.sender);
        State storage s = t.state;
        _requireOpen(taskId, s, Phase.Finalize);
        uint32 round = s.round;
        if (s.availability < Availability.InputsFixed) revert AvailabilityPending(taskId, round);
        _requireCid(modelCid);
        modelRegistry.record(taskId, round, modelCid, modelSha256);
        uint256 perSurvivor = _takeReward(t, s.survivors);
        _payouts[taskId][round] = perSurvivor | (uint256(block.number + t.params.challengeBlocks) << 128);
        s.lastPaid = round;
        emit RoundFinalized(taskId, round, s.survivors, perSurvivor);
        _nextRound(taskId, t);
    }

    /// @notice The aggregator fixes, once per stage, which of the round's posted blobs it
    ///         could not fetch (registration indices, 0-based; usually none). Stage 1, in
    ///         Commit (tasks with ShareKeys): share bundles; those members cannot commit.
    ///         Stage 2, in Unmask (or in Finalize for tasks without Unmask): revealed inputs;
    ///         those members leave U (no reward). Members named in stage 1 or 2 pay the
    ///         absence fee (bounded; the chain cannot tell a withholder from a member the
    ///         aggregator censors, so nobody is slashed for it). Commits, unmask shares and
    ///         the model are accepted only after the stage is fixed, so every party acts on
    ///         the same sets. If fewer than `threshold` members are left in U the round fails.
    ///         Stage 3, in Finalize (tasks with Unmask, optional): unmask blobs it could not
    ///         fetch; the unmask then does not count as complete (the bond is not forfeited).
    function declareUnavailable(uint256 taskId, uint32[] calldata withheld) external {
        Task storage t = _task(taskId);
        if (msg.sender != t.params.aggregator) revert NotAggregator(taskId, msg.sender);
        State storage s = t.state;
        Phase phase = s.phase;
        Availability stage = Availability.SharesFixed;
        if (phase == Phase.Unmask || (phase == Phase.Finalize && !s.hasShareKeys)) stage = Availability.InputsFixed;
        else if (phase == Phase.Finalize) stage = Availability.UnmasksFixed;
        else if (phase != Phase.Commit || !s.hasShareKeys) revert WrongPhase(taskId, Phase.Commit, phase);
        _requireOpen(taskId, s, phase);
        uint32 round = s.round;
        if (s.availability >= stage) revert AvailabilityFixed(taskId, round);
        if (stage == Availability.UnmasksFixed && s.availability != Availability.InputsFixed) {
            revert AvailabilityPending(taskId, round);
        }
        s.availability = stage;
        if (withheld.length != 0) _withhold(taskId, t, round, withheld, stage);
        emit Unavailable(taskId, round, phase, withheld);
        if (stage == Availability.InputsFixed && s.survivors < t.params.threshold) _fail(taskId, t, phase);
    }

    /// @notice Challenge window: a member flags a finalized round whose model it disputes
    ///         (e.g. `secagg verify` recomputed another sum), until `challengeBlocks` after the
    ///         finalize. Once per member and round; the count is public (`flagsOf`). A flag
    ///         records the dispute for everyone who reads the model; it does not stop the
    ///         payout after the window, which nothing on chain could judge (contracts/README.md).
    function flagRound(uint256 taskId, uint32 round) external {
        _task(taskId);
        if (_members[taskId][msg.sender].index == 0) revert NotRegistered(taskId, msg.sender);
        // a finalized round's window runs to `claimableFrom`; unpaid rounds have 0 there, and a
        // forfeited bond is claimable at once: neither can be flagged
        if (block.number >= _payouts[taskId][round] >> 128) revert NotFlaggable(taskId, round);
        if (_flagged[taskId][round][msg.sender]) revert AlreadyFlagged(taskId, round, msg.sender);
        _flagged[taskId][round][msg.sender] = true;
        uint32 flags = ++_flags[taskId][round];
        emit RoundFlagged(taskId, round, msg.sender, flags);
    }

    // ------------------------------------------------------------------ anyone

    /// @notice Ends the current phase once its deadline has passed, or earlier once everyone
    ///         who may act in it has acted (Registration, ShareKeys, Unmask), and opens the
    ///         next one, fails the round or ends the task. Commit and Reveal always run to
    ///         their deadline: they keep no counter, which saves two storage writes per
    ///         participant per round (GAS.md).
    function advance(uint256 taskId) external {
        Task storage t = _task(taskId);
        State storage s = t.state;
        Phase phase = s.phase;
        if (phase == Phase.Ended) revert WrongPhase(taskId, Phase.None, Phase.Ended);
        TaskParams storage p = t.params;
        // only Registration waits for the bond (the other phases read neither slot)
        bool bonded = phase != Phase.Registration || p.aggregatorBond == 0 || t.bond != 0;
        bool everyoneActed = s.expected != 0 && s.acted >= s.expected && bonded;
        if (block.number <= s.deadline && !everyoneActed) revert PhaseStillOpen(taskId, s.deadline);
        if (phase == Phase.Registration) {
            if (s.acted >= p.minParticipants && bonded) _startRound(taskId, t, 1);
            else _end(taskId, t);
        } else if (phase == Phase.ShareKeys) {
            if (s.acted < p.threshold) {
                _sweep(taskId, t, false);
                _creditKeeper(taskId, t);
                _fail(taskId, t, phase);
            } else {
                _open(taskId, s, Phase.Commit, p.commitBlocks, 0);
            }
        } else if (phase == Phase.Commit) {
            _open(taskId, s, Phase.Reveal, p.revealBlocks, 0);
        } else if (phase == Phase.Reveal) {
            uint32 survivorCount = _sweep(taskId, t, true);
            _creditKeeper(taskId, t);
            if (survivorCount < p.threshold) _fail(taskId, t, phase);
            else if (p.unmaskBlocks != 0) _open(taskId, s, Phase.Unmask, p.unmaskBlocks, s.survivors);
            else _open(taskId, s, Phase.Finalize, p.finalizeBlocks, 0);
        } else if (phase == Phase.Unmask) {
            s.unmaskComplete = s.acted >= s.expected; // recorded before _open resets `acted`
            _open(taskId, s, Phase.Finalize, p.finalizeBlocks, 0);
        } else {
            // Finalize: the aggregator posted no model in time. With every unmask share
            // posted it had all it needed: its bond goes to the round's survivors.
            if (s.unmaskComplete && t.bond != 0) _forfeitBond(taskId, t);
            _fail(taskId, t, phase);
        }
    }

    // ------------------------------------------------------------------ views

    function taskParams(uint256 taskId) external view returns (TaskParams memory) {
        return _task(taskId).params;
    }

    function taskState(uint256 taskId) external view returns (State memory) {
        return _task(taskId).state;
    }

    function taskOwner(uint256 taskId) external view returns (address) {
        return _task(taskId).owner;
    }

    function poolOf(uint256 taskId) external view returns (uint256) {
        return _task(taskId).pool;
    }

    /// @notice The aggregator's bond still held for the task.
    function bondOf(uint256 taskId) external view returns (uint256) {
        return _task(taskId).bond;
    }

    function memberOf(uint256 taskId, address account) external view returns (Member memory) {
        return _members[taskId][account];
    }

    /// @notice Slashed stake of the task not yet paid to survivors (locked for good once the
    ///         task has ended).
    function slashedOf(uint256 taskId) external view returns (uint256) {
        return _task(taskId).slashed;
    }

    /// @notice The account's commitment in `round`: zero unless it committed in that round
    ///         (only its latest round's commitment is kept).
    function commitmentOf(uint256 taskId, address account, uint32 round) external view returns (bytes32) {
        Member storage m = _members[taskId][account];
        Status st = m.status;
        bool committed = st == Status.Committed || st == Status.Revealed || st == Status.Unmasked
            || st == Status.Slashed || st == Status.InputWithheld;
        if (m.round != round || !committed) return bytes32(0);
        return _commitments[taskId][account];
    }

    /// @notice What `claimRewards` would pay `account` now.
    function creditOf(uint256 taskId, address account) external view returns (uint256 amount) {
        (amount,) = _earned(taskId, _members[taskId][account], _task(taskId).state.lastPaid);
        amount += _keeperCredit[taskId][account];
    }

    /// @notice How many members flagged `round` in its challenge window.
    function flagsOf(uint256 taskId, uint32 round) external view returns (uint32) {
        return _flags[taskId][round];
    }

    /// @notice U of a round whose Reveal phase has closed, as a bitmap over registration
    ///         indices (bit i of word i / 256: the member at `KeyRegistry.participants`[i]);
    ///         empty before. `secagg.chain.Contracts.survivors` turns it into addresses.
    function survivorBits(uint256 taskId, uint32 round) external view returns (uint256[] memory) {
        return _survivorBits[taskId][round];
    }

    /// @notice The commitment a participant posts: keccak256(abi.encode(chain id, this
    ///         coordinator, task id, round, sender, keccak256(cid), salt)). It opens only in
    ///         the task, round and deployment it was made for, and only by its sender.
    function commitmentFor(uint256 taskId, uint32 round, address sender, bytes calldata cid, bytes32 salt)
        public
        view
        returns (bytes32)
    {
        return keccak256(abi.encode(block.chainid, address(this), taskId, round, sender, keccak256(cid), salt));
    }

    // ------------------------------------------------------------------ internals

    function _task(uint256 taskId) private view returns (Task storage t) {
        t = _tasks[taskId];
        if (t.state.phase == Phase.None) revert UnknownTask(taskId);
    }

    /// @dev Marks the members at `withheld` as out of the round: their bundle (stage 1) or
    ///      their revealed input (stage 2) was unavailable, and charges them the absence fee;
    ///      stage 3 (unmask blobs) only marks the unmask incomplete. Each must have posted
    ///      that stage's blob this round.
    function _withhold(uint256 taskId, Task storage t, uint32 round, uint32[] calldata withheld, Availability stage)
        private
    {
        State storage s = t.state;
        address[] memory all = keyRegistry.participants(taskId);
        uint256[] storage bits = _survivorBits[taskId][round];
        Status posted = stage == Availability.SharesFixed
            ? Status.Shared
            : (stage == Availability.InputsFixed ? Status.Revealed : Status.Unmasked);
        for (uint256 j = 0; j < withheld.length; ++j) {
            uint32 i = withheld[j];
            if (i >= all.length) revert NotWithholdable(taskId, round, i);
            Member storage m = _members[taskId][all[i]];
            if (m.round != round || m.status != posted) revert NotWithholdable(taskId, round, i);
            if (stage == Availability.UnmasksFixed) {
                s.unmaskComplete = false;
                continue;
            }
            if (stage == Availability.SharesFixed) {
                m.status = Status.SharesWithheld;
            } else {
                m.status = Status.InputWithheld;
                bits[i >> 8] &= ~(uint256(1) << (i & 255));
                s.survivors -= 1;
                if (s.expected != 0) s.expected -= 1; // Unmask: one fewer member to wait for
            }
            _fine(taskId, t, m, all[i]);
        }
    }

    /// @dev Charges `m` the absence fee (into the slashed stake paid to later survivors) and
    ///      ejects it when its stake reaches zero.
    function _fine(uint256 taskId, Task storage t, Member storage m, address account) private {
        uint128 amount = _charge(m, t.params.absenceFee);
        if (amount == 0) return;
        t.slashed += amount;
        emit AbsenceCharged(taskId, t.state.round, account, amount);
        if (m.stake == 0) _eject(taskId, t, m, account);
    }

    /// @dev `m` can no longer act in the task (its stake is gone, or it left).
    function _eject(uint256 taskId, Task storage t, Member storage m, address account) private {
        m.ejected = true;
        t.ejected += 1;
        emit MemberEjected(taskId, t.state.round, account);
    }

    /// @dev The checks every participant call starts with: the task exists, `phase` is open,
    ///      the caller is registered and not ejected; returns its status in the current round.
    function _caller(uint256 taskId, Phase phase)
        private
        view
        returns (State storage s, Member storage m, uint32 round, Status current)
    {
        s = _task(taskId).state;
        _requireOpen(taskId, s, phase);
        m = _members[taskId][msg.sender];
        if (m.index == 0) revert NotRegistered(taskId, msg.sender);
        if (m.ejected) revert Ejected(taskId, msg.sender);
        round = s.round;
        current = m.round == round ? m.status : Status.None;
    }

    function _requirePhase(uint256 taskId, State storage s, Phase phase) private view {
        if (s.phase != phase) revert WrongPhase(taskId, phase, s.phase);
    }

    function _requireOpen(uint256 taskId, State storage s, Phase phase) private view {
        _requirePhase(taskId, s, phase);
        if (block.number > s.deadline) revert DeadlinePassed(taskId, s.deadline);
    }

    function _checkParams(TaskParams calldata p) private view {
        string memory bad = _badParam(p);
        if (bytes(bad).length != 0) revert InvalidParameter(bad);
    }

    /// @dev The name of the first parameter `createTask` refuses ("" when all are fine): one
    ///      revert site instead of one per check keeps the code under EIP-170's size limit.
    function _badParam(TaskParams calldata p) private view returns (string memory) {
        if (p.aggregator == address(0)) return "aggregator";
        if (p.threshold == 0) return "threshold";
        if (p.minParticipants < p.threshold) return "minParticipants";
        if (p.maxParticipants < p.minParticipants || p.maxParticipants > MAX_PARTICIPANTS) return "maxParticipants";
        if (p.numRounds == 0 || p.numRounds > MAX_ROUNDS) return "numRounds";
        if (!_phaseLength(p.registrationBlocks)) return "registrationBlocks";
        if (p.shareBlocks != 0 && !_phaseLength(p.shareBlocks)) return "shareBlocks";
        if (!_phaseLength(p.commitBlocks)) return "commitBlocks";
        if (!_phaseLength(p.revealBlocks)) return "revealBlocks";
        if (p.unmaskBlocks != 0 && !_phaseLength(p.unmaskBlocks)) return "unmaskBlocks";
        if ((p.shareBlocks == 0) != (p.unmaskBlocks == 0)) return "unmaskBlocks";
        if (!_phaseLength(p.finalizeBlocks)) return "finalizeBlocks";
        if (p.slashAmount > p.stake) return "slashAmount";
        if (p.absenceFee > p.slashAmount) return "absenceFee";
        // every stake slashed in full still fits `slashed`, and pool + stakes fit the balance
        if (uint256(p.stake) * p.maxParticipants + p.rewardPool + p.aggregatorBond > type(uint128).max) return "stake";
        if (p.rewardPerRound > p.rewardPool) return "rewardPerRound";
        if (p.keeperFee > p.rewardPerRound) return "keeperFee";
        if (p.challengeBlocks != 0 && !_phaseLength(p.challengeBlocks)) return "challengeBlocks";
        if (address(token).code.length == 0) return "token";
        return "";
    }

    /// @dev What each of the `count` survivors is paid: the round's reward from the pool plus the
    ///      slashed stake not yet paid out, divided equally. Slashed stake is taken first and
    ///      the pool pays the rest (at most `rewardPerRound`); the division's remainder stays.
    function _takeReward(Task storage t, uint32 count) private returns (uint256 perSurvivor) {
        uint128 fromPool = t.params.rewardPerRound < t.pool ? t.params.rewardPerRound : t.pool;
        uint128 slashed = t.slashed;
        perSurvivor = (uint256(fromPool) + slashed) / count;
        uint128 paid = uint128(perSurvivor * count); // <= fromPool + slashed < 2^128
        uint128 paidFromSlashed = paid < slashed ? paid : slashed;
        t.slashed = slashed - paidFromSlashed;
        t.pool -= paid - paidFromSlashed;
    }

    /// @dev The rewards of rounds (m.claimedThrough, through] whose U holds `m`: `through` is
    ///      `last` or the round before the first whose challenge window is still open.
    function _earned(uint256 taskId, Member storage m, uint32 last)
        private
        view
        returns (uint256 amount, uint32 through)
    {
        uint256 index = m.index;
        through = m.claimedThrough;
        if (index == 0) return (0, through);
        index -= 1; // bit of the member in U's bitmap (registration order)
        for (uint32 r = through + 1; r <= last; ++r) {
            uint256 payout = _payouts[taskId][r];
            if (block.number < payout >> 128) break; // in its challenge window: not yet
            through = r;
            uint256 per = uint128(payout);
            if (per != 0 && _survivorBits[taskId][r][index >> 8] & (uint256(1) << (index & 255)) != 0) amount += per;
        }
    }

    /// @dev The whole bond, split equally among the round's survivors (claimed like a reward;
    ///      the division's remainder joins the slashed stake paid to a later round).
    function _forfeitBond(uint256 taskId, Task storage t) private {
        State storage s = t.state;
        uint32 round = s.round;
        uint128 bond = t.bond;
        uint256 perSurvivor = bond / s.survivors;
        t.bond = 0;
        t.slashed += uint128(bond - perSurvivor * s.survivors);
        _payouts[taskId][round] = perSurvivor | (uint256(block.number) << 128); // no window: no model
        s.lastPaid = round;
        emit BondForfeited(taskId, round, perSurvivor);
    }

    /// @dev A binary CIDv1 with a sha2-256 digest, raw or dag-pb (36 bytes): agents parse every
    ///      CID posted, so a malformed one must not reach the events.
    function _requireCid(bytes calldata cid) private pure {
        if (
            cid.length != 36 || cid[0] != 0x01 || (cid[1] != 0x55 && cid[1] != 0x70) || cid[2] != 0x12
                || cid[3] != 0x20
        ) revert MalformedCid(cid);
    }

    function _phaseLength(uint32 blocks) private pure returns (bool) {
        return blocks >= MIN_PHASE_BLOCKS && blocks <= MAX_PHASE_BLOCKS;
    }

    /// @dev Takes `amount` from the caller and refuses a token whose transfer delivers
    ///      anything else (fee-on-transfer, rebasing): the books must match the balance, or
    ///      the last withdrawal would revert.
    function _pull(uint256 amount) private {
        uint256 before = token.balanceOf(address(this));
        token.safeTransferFrom(msg.sender, address(this), amount);
        uint256 received = token.balanceOf(address(this)) - before;
        if (received != amount) revert UnsupportedToken(address(token), amount, received);
    }

    function _checkFunds(uint256 required, bool isStake) private view {
        uint256 allowance = token.allowance(msg.sender, address(this));
        uint256 balance = token.balanceOf(msg.sender);
        if (allowance < required || balance < required) {
            if (isStake) revert InsufficientStake(required, allowance, balance);
            revert InsufficientFunds(required, allowance, balance);
        }
    }

    function _open(uint256 taskId, State storage s, Phase phase, uint32 blocks, uint32 expected) private {
        uint64 deadline = uint64(block.number) + blocks;
        s.phase = phase;
        s.deadline = deadline;
        s.expected = expected;
        s.acted = 0;
        emit PhaseChanged(taskId, s.round, phase, deadline);
    }

    function _startRound(uint256 taskId, Task storage t, uint32 round) private {
        State storage s = t.state;
        s.round = round;
        s.survivors = 0;
        s.unmaskComplete = false;
        s.availability = Availability.Open;
        uint32 active = uint32(keyRegistry.participantCount(taskId)) - t.ejected;
        if (s.hasShareKeys) _open(taskId, s, Phase.ShareKeys, t.params.shareBlocks, active);
        else _open(taskId, s, Phase.Commit, t.params.commitBlocks, 0);
    }

    /// @dev The round's one walk over the members, when its Reveal phase closes (`fixU`) or
    ///      when it fails at ShareKeys: charges the absence fee to members who did not act in
    ///      the round's first phase, and with `fixU` fixes U as a bitmap over registration
    ///      indices and slashes those who committed and did not reveal. A member whose stake
    ///      reaches zero is ejected. What is taken joins the slashed stake paid to later
    ///      survivors (written once, after the walk).
    function _sweep(uint256 taskId, Task storage t, bool fixU) private returns (uint32 survivorCount) {
        State storage s = t.state;
        uint32 round = s.round;
        address[] memory all = keyRegistry.participants(taskId);
        uint256[] memory bits = new uint256[]((all.length + 255) >> 8);
        uint128 taken;
        uint32 ejected;
        for (uint256 i = 0; i < all.length; ++i) {
            Member storage m = _members[taskId][all[i]];
            uint128 amount;
            if (m.round != round) {
                if (m.ejected) continue;
                amount = _charge(m, t.params.absenceFee);
                if (amount != 0) emit AbsenceCharged(taskId, round, all[i], amount);
            } else if (!fixU) {
                continue;
            } else if (m.status == Status.Revealed) {
                bits[i >> 8] |= uint256(1) << (i & 255);
                ++survivorCount;
            } else if (m.status == Status.Committed) {
                m.status = Status.Slashed;
                amount = _charge(m, t.params.slashAmount);
                if (amount != 0) emit Slashed(taskId, round, all[i], amount);
            } else if (m.status == Status.Shared && !m.ejected) {
                amount = _charge(m, t.params.absenceFee); // shared keys, then never committed
                if (amount != 0) emit AbsenceCharged(taskId, round, all[i], amount);
            }
            if (amount != 0 && m.stake == 0) {
                m.ejected = true;
                ++ejected;
                emit MemberEjected(taskId, round, all[i]);
            }
            taken += amount; // cannot overflow: _checkParams bounds the stakes' sum
        }
        if (taken != 0) t.slashed += taken;
        if (ejected != 0) t.ejected += ejected;
        if (!fixU) return 0;
        _survivorBits[taskId][round] = bits;
        s.survivors = survivorCount;
    }

    /// @dev The caller of an `advance` that walked over the members is paid for the walk's gas
    ///      from the owner's pool (`keeperFee`, at most what is left), as a credit.
    function _creditKeeper(uint256 taskId, Task storage t) private {
        uint128 fee = t.params.keeperFee < t.pool ? t.params.keeperFee : t.pool;
        if (fee == 0) return;
        t.pool -= fee;
        _keeperCredit[taskId][msg.sender] += fee;
        emit KeeperCredited(taskId, t.state.round, msg.sender, fee);
    }

    /// @dev Takes up to `fee` from `m`'s stake; returns what it took.
    function _charge(Member storage m, uint128 fee) private returns (uint128 amount) {
        amount = m.stake < fee ? m.stake : fee;
        if (amount != 0) m.stake -= amount;
    }

    function _fail(uint256 taskId, Task storage t, Phase phase) private {
        emit RoundFailed(taskId, t.state.round, phase);
        _nextRound(taskId, t);
    }

    function _nextRound(uint256 taskId, Task storage t) private {
        uint32 round = t.state.round;
        if (round >= t.params.numRounds) _end(taskId, t);
        else _startRound(taskId, t, round + 1);
    }

    function _end(uint256 taskId, Task storage t) private {
        State storage s = t.state;
        s.phase = Phase.Ended;
        s.deadline = uint64(block.number);
        s.expected = 0;
        s.acted = 0;
        emit PhaseChanged(taskId, s.round, Phase.Ended, s.deadline);
        emit TaskEnded(taskId, s.round);
        if (t.slashed != 0) emit SlashedStakeBurned(taskId, t.slashed); // stays locked here
    }
}
