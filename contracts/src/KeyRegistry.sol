// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

/// @title KeyRegistry
/// @notice The public keys each participant uses in a task, bound to the account that
///         registered them: nobody, the aggregator included, can substitute another's keys.
/// @dev Written only by the RoundCoordinator that deployed it, from `register`, with the
///      participant's own `msg.sender`; the stake is held by the coordinator. Per task:
///      - `agreementKey`: the long-term X25519 public key c_u^PK (Bonawitz et al.) under which
///        neighbours encrypt the Shamir shares sent to u. It is never revealed, so it can live
///        for the whole task; the masking key s_u^PK is fresh every round and is posted with
///        the round's share bundle (RoundCoordinator.shareKeys), because s_u^SK is
///        reconstructed when u drops out.
///      - `heContextCid`: for HE tasks, the CID of the public CKKS/Paillier context (empty for
///        masking tasks).
contract KeyRegistry {
    struct Keys {
        bytes32 agreementKey;
        bytes heContextCid;
    }

    error NotCoordinator(address caller);
    error AlreadyRegistered(uint256 taskId, address participant);
    error NotRegistered(uint256 taskId, address participant);

    address public immutable coordinator;

    mapping(uint256 taskId => address[]) private _participants;
    mapping(uint256 taskId => mapping(address participant => Keys)) private _keys;
    mapping(uint256 taskId => mapping(address participant => uint32)) private _index;

    constructor() {
        coordinator = msg.sender;
    }

    /// @notice Records `participant`'s keys; returns its 1-based index in the task.
    function record(uint256 taskId, address participant, bytes32 agreementKey, bytes calldata heContextCid)
        external
        returns (uint32 index)
    {
        if (msg.sender != coordinator) revert NotCoordinator(msg.sender);
        if (_index[taskId][participant] != 0) revert AlreadyRegistered(taskId, participant);
        _participants[taskId].push(participant);
        index = uint32(_participants[taskId].length);
        _index[taskId][participant] = index;
        _keys[taskId][participant] = Keys(agreementKey, heContextCid);
    }

    function keysOf(uint256 taskId, address participant)
        external
        view
        returns (bytes32 agreementKey, bytes memory heContextCid)
    {
        if (_index[taskId][participant] == 0) revert NotRegistered(taskId, participant);
        Keys storage k = _keys[taskId][participant];
        return (k.agreementKey, k.heContextCid);
    }

    /// @notice 1-based registration index, 0 when not registered.
    function indexOf(uint256 taskId, address participant) external view returns (uint32) {
        return _index[taskId][participant];
    }

    /// @notice Participants in registration order (index i is at position i - 1).
    function participants(uint256 taskId) external view returns (address[] memory) {
        return _participants[taskId];
    }

    function participantCount(uint256 taskId) external view returns (uint256) {
        return _participants[taskId].length;
    }
}
