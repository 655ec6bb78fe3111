// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

/// @title ModelRegistry
/// @notice Global model versions per task: round 0 is the initial model posted by the task
///         owner, round r >= 1 the aggregate of round r posted by the task's aggregator. Only
///         the CID and the sha256 of the bytes are on chain; anyone can fetch the CIDs of the
///         round's revealed inputs, recompute the aggregate and compare.
/// @dev Written only by the RoundCoordinator that deployed it (which checks who may post).
contract ModelRegistry {
    struct Model {
        bytes32 sha256Digest;
        uint64 blockNumber;
        bytes cid;
    }

    error NotCoordinator(address caller);
    error ModelAlreadyRecorded(uint256 taskId, uint256 round);
    error NoModel(uint256 taskId, uint256 round);

    event ModelPublished(uint256 indexed taskId, uint256 indexed round, bytes cid, bytes32 sha256Digest);

    address public immutable coordinator;

    mapping(uint256 taskId => mapping(uint256 round => Model)) private _models;
    mapping(uint256 taskId => uint256) private _latest;

    constructor() {
        coordinator = msg.sender;
    }

    function record(uint256 taskId, uint256 round, bytes calldata cid, bytes32 sha256Digest) external {
        if (msg.sender != coordinator) revert NotCoordinator(msg.sender);
        if (_models[taskId][round].blockNumber != 0) revert ModelAlreadyRecorded(taskId, round);
        _models[taskId][round] = Model(sha256Digest, uint64(block.number), cid);
        _latest[taskId] = round;
        emit ModelPublished(taskId, round, cid, sha256Digest);
    }

    function modelOf(uint256 taskId, uint256 round)
        external
        view
        returns (bytes memory cid, bytes32 sha256Digest, uint64 blockNumber)
    {
        Model storage m = _models[taskId][round];
        if (m.blockNumber == 0) revert NoModel(taskId, round);
        return (m.cid, m.sha256Digest, m.blockNumber);
    }

    /// @notice The round of the newest model of the task (0: only the initial model).
    function latestRound(uint256 taskId) external view returns (uint256) {
        if (_models[taskId][0].blockNumber == 0) revert NoModel(taskId, 0);
        return _latest[taskId];
    }
}
