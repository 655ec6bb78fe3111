// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";

/// @notice Test fixture, never deployed by secagg (tests/test_chain_reentrancy.py): an ERC-20
/// that, once armed, calls `target` with `payload` from inside a transfer to or from `target`
/// (the reentrancy an ERC-777-style or malicious reward token would attempt) and records how
/// that call ended. Compiled at test time by `node contracts/build.js --fixture`.
contract HostileToken is ERC20 {
    address public target;
    bytes public payload;
    bool public armed;
    uint256 public attempts;
    uint256 public successes;
    bytes public lastRevert;

    constructor() ERC20("hostile", "HOST") {}

    function mint(address to, uint256 amount) external {
        _mint(to, amount);
    }

    function arm(address target_, bytes calldata payload_) external {
        target = target_;
        payload = payload_;
        armed = true;
    }

    function _update(address from, address to, uint256 value) internal override {
        super._update(from, to, value);
        if (armed && (from == target || to == target)) {
            armed = false; // one attempt per arming
            attempts += 1;
            (bool ok, bytes memory ret) = target.call(payload);
            if (ok) {
                successes += 1;
            } else {
                lastRevert = ret;
            }
        }
    }
}
