// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";

/// @notice Test fixture, never deployed by secagg (tests/test_chain_contracts.py): an ERC-20
/// that burns 1% of every transfer between two accounts (a fee-on-transfer token), so the
/// receiver gets less than the amount sent. Compiled at test time by
/// `node contracts/build.js --fixture`.
contract FeeToken is ERC20 {
    constructor() ERC20("fee", "FEE") {}

    function mint(address to, uint256 amount) external {
        _mint(to, amount);
    }

    function _update(address from, address to, uint256 value) internal override {
        if (from == address(0) || to == address(0)) return super._update(from, to, value);
        uint256 fee = value / 100;
        super._update(from, address(0), fee);
        super._update(from, to, value - fee);
    }
}
