"""A connection to an Ethereum node with locally signed transactions.

:class:`Chain` wraps a web3 instance. Transactions are built, gas-estimated, signed with the
sender's key (eth-account) and sent raw, so any JSON-RPC node works without unlocked
accounts; a revert (at estimation or on inclusion) raises the contract's named error from
:mod:`secagg.chain.errors`.

Two ways in:

- :meth:`Chain.embedded` -- eth-tester + py-evm in process (web3's ``EthereumTesterProvider``),
  the default for the demo and the tests;
- :meth:`Chain.connect` -- any JSON-RPC URL, e.g. an :class:`~secagg.chain.anvil.AnvilNode`.
"""

from __future__ import annotations

import ast
from typing import Any, cast

import requests
from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import EthereumTesterProvider, HTTPProvider, Web3
from web3.contract import Contract
from web3.contract.contract import ContractConstructor, ContractFunction
from web3.types import TxParams, TxReceipt, Wei

from secagg.randomness import RandomSource, as_random_source

from .artifacts import decode_revert, load
from .errors import ChainError, NodeError, NodeUnavailableError, TransactionError

ETHER = 10**18
GAS_MARGIN = 1.2  # estimates are exact for our code paths; the margin covers a changed state
EMBEDDED_GAS_LIMIT = 10_000_000  # gas used is charged, not the limit


class Chain:
    """A web3 connection plus the helpers the bindings need.

    Parameters
    ----------
    w3:
        A connected web3 instance.
    funder:
        An account the node has unlocked (a dev chain's first account), used by
        :meth:`fund`; None on a production node.
    """

    def __init__(self, w3: Web3, funder: str | None = None) -> None:
        self.w3 = w3
        self.funder = funder
        self.chain_id = int(w3.eth.chain_id)

    @classmethod
    def embedded(cls) -> Chain:
        """A fresh in-process chain (eth-tester on py-evm, Prague rules)."""
        w3 = Web3(EthereumTesterProvider())
        return cls(w3, funder=w3.eth.accounts[0])

    @classmethod
    def connect(cls, url: str, *, timeout: float = 30.0) -> Chain:
        """Any JSON-RPC endpoint over HTTP; the first unlocked account (if any) funds."""
        w3 = Web3(_NodeProvider(url, request_kwargs={"timeout": timeout}))
        try:
            accounts = w3.eth.accounts
        except Exception as exc:
            raise NodeError(f"no Ethereum node answers at {url}: {exc}") from exc
        return cls(w3, funder=accounts[0] if accounts else None)

    @property
    def is_embedded(self) -> bool:
        return isinstance(self.w3.provider, EthereumTesterProvider)

    @property
    def block_number(self) -> int:
        return int(self.w3.eth.block_number)

    def new_account(
        self, rng: RandomSource | int | None = None, *, fund: int = ETHER
    ) -> LocalAccount:
        """A new key pair from ``rng`` (OS entropy by default), funded with ``fund`` wei."""
        key = as_random_source(rng).random_bytes(32)
        account: LocalAccount = Account.from_key(key)
        if fund:
            self.fund(account.address, fund)
        return account

    def fund(self, address: str, wei: int) -> None:
        """Sends ``wei`` from the node's unlocked dev account."""
        if self.funder is None:
            raise NodeError("this node has no unlocked account to fund from")
        tx_hash = self.w3.eth.send_transaction(
            {"from": self.funder, "to": address, "value": Wei(wei)}
        )
        self._receipt(tx_hash)

    def mine(self, blocks: int = 1) -> None:
        """Mines ``blocks`` empty blocks (dev chains only), to pass phase deadlines."""
        if self.is_embedded:
            self.w3.provider.ethereum_tester.mine_blocks(blocks)  # type: ignore[attr-defined]
            return
        self._dev_rpc("anvil_mine", [hex(blocks)])

    def snapshot(self) -> Any:
        """Saves the chain state (dev chains only); :meth:`revert` goes back to it."""
        if self.is_embedded:
            return self.w3.provider.ethereum_tester.take_snapshot()  # type: ignore[attr-defined]
        return self._dev_rpc("evm_snapshot", [])

    def revert(self, snapshot_id: Any) -> None:
        if self.is_embedded:
            self.w3.provider.ethereum_tester.revert_to_snapshot(snapshot_id)  # type: ignore[attr-defined]
        else:
            self._dev_rpc("evm_revert", [snapshot_id])

    def _dev_rpc(self, method: str, params: list[Any]) -> Any:
        response = self.w3.provider.make_request(method, params)  # type: ignore[arg-type]
        if "error" in response:
            raise NodeError(f"{method} is not supported by this node: {response['error']}")
        return response["result"]

    def contract(self, name: str, address: str) -> Contract:
        """The deployed contract ``name`` (an artifact name) at ``address``."""
        return self.w3.eth.contract(address=Web3.to_checksum_address(address), abi=load(name).abi)

    def deploy(self, sender: LocalAccount, name: str, *args: Any) -> tuple[Contract, TxReceipt]:
        """Deploys artifact ``name`` with constructor ``args``."""
        artifact = load(name)
        factory = self.w3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode)
        receipt = self.transact(sender, factory.constructor(*args))
        address = receipt["contractAddress"]
        if address is None:
            raise TransactionError(f"deploying {name} created no contract")
        return self.contract(name, address), receipt

    def transact(self, sender: LocalAccount, fn: Any) -> TxReceipt:
        """Builds, signs with ``sender``'s key, sends and waits for ``fn``'s transaction.

        Raises
        ------
        ContractError
            (a subclass named after the Solidity error) when the call reverts.
        TransactionError
            When it fails without a decodable reason.
        """
        params = {
            "from": sender.address,
            "nonce": self.w3.eth.get_transaction_count(sender.address, "pending"),
            "chainId": self.chain_id,
        }
        gas = self._gas_limit(fn, params)
        try:
            tx = fn.build_transaction({**params, "gas": gas})
        except Exception as exc:
            raise self._as_chain_error(exc) from exc
        signed = sender.sign_transaction(tx)
        receipt = self._receipt(self.w3.eth.send_raw_transaction(signed.raw_transaction))
        if receipt["status"] != 1:
            self._replay(tx, receipt)
        return receipt

    def _gas_limit(self, fn: Any, params: dict[str, Any]) -> int:
        """Runs ``fn`` once as a call (a revert raises its named error here, before
        anything is signed) and picks the gas limit.

        On the embedded chain the limit is a flat :data:`EMBEDDED_GAS_LIMIT`: eth-tester
        estimates by bisection, a dozen EVM runs per transaction, and it decodes a custom
        error that carries one string as if it were ``Error(string)``. Elsewhere the node's
        estimate, with a margin.
        """
        try:
            if not isinstance(fn, ContractConstructor):  # a deployment has no call: estimate
                fn.call(params, block_identifier="pending")  # block.number as at inclusion
                if self.is_embedded:
                    return EMBEDDED_GAS_LIMIT
            return int(fn.estimate_gas(params) * GAS_MARGIN) + 5_000
        except Exception as exc:
            raise self._as_chain_error(exc) from exc

    def call(self, fn: ContractFunction) -> Any:
        """Runs a view function; reverts raise the named error."""
        try:
            return fn.call()
        except Exception as exc:
            raise self._as_chain_error(exc) from exc

    def _receipt(self, tx_hash: Any) -> TxReceipt:
        return self.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=60)

    def _replay(self, tx: Any, receipt: TxReceipt) -> None:
        """A mined transaction reverted: re-run it on the next block to recover the reason
        (what made it revert, e.g. a deadline, usually still holds)."""
        call = cast(TxParams, {k: tx[k] for k in ("from", "to", "data", "value", "gas") if k in tx})
        try:
            self.w3.eth.call(call, "pending")
        except Exception as exc:
            raise self._as_chain_error(exc) from exc
        raise TransactionError(f"transaction {receipt['transactionHash'].hex()} reverted")

    @staticmethod
    def _as_chain_error(exc: Exception) -> ChainError:
        if isinstance(exc, ChainError):  # already named (e.g. the node is down)
            return exc
        data = revert_data(exc)
        if data:
            named = decode_revert(data)
            if named is not None:
                return named
        return TransactionError(f"transaction failed: {exc}")


class _NodeProvider(HTTPProvider):
    """web3's HTTP provider, with a node that does not answer named
    (:class:`NodeUnavailableError`) instead of a ``requests`` exception from deep inside."""

    def make_request(self, method: Any, params: Any) -> Any:
        try:
            return super().make_request(method, params)
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise NodeUnavailableError(
                f"the node at {self.endpoint_uri} did not answer {method}"
            ) from exc


def revert_data(exc: Exception) -> bytes | None:
    """The raw revert bytes inside a web3 or eth-tester exception, when there are any."""
    data = getattr(exc, "data", None)
    if isinstance(data, str) and data.startswith("0x"):
        return bytes.fromhex(data[2:])
    if isinstance(data, dict) and isinstance(data.get("data"), str):
        return bytes.fromhex(data["data"].removeprefix("0x"))
    message = exc.args[0] if exc.args else ""
    if isinstance(message, bytes):
        return message
    if isinstance(message, str):
        literal = message.removeprefix("execution reverted: ")
        if literal[:2] in ("b'", 'b"'):
            try:
                value = ast.literal_eval(literal)
            except (ValueError, SyntaxError):
                return None
            return value if isinstance(value, bytes) else None
    return None
