"""The ``secagg`` subcommands of the deployment roles, each party in its own process.

==========================  =======================================================  =========
command                     what it does                                             who
==========================  =======================================================  =========
``account new|import``      a keystore v3 account plus c_u, encrypted (0600)          everyone
``account show``            the address and c_u^PK of a keystore (no passphrase)      everyone
``devnet up|down``          anvil (with a block time) and an IPFS daemon, by PID       local runs
``deploy``                  token + RoundCoordinator; writes the deployment file      owner
``fund``                    dev-chain ether and minted reward tokens                  owner
``task create``             initial model + spec in the store, the task on chain      owner
``task close``              after the end: the owner's keeper fees and the pool       owner
``participant``             registers, then trains, masks, posts, unmasks, claims     each client
``aggregator``              posts its bond, fixes availability, finalizes rounds       aggregator
``status``                  round, phase, members, U, models, balances                anyone
``data digits``             the digits split as one ``.npz`` shard per client          local runs
==========================  =======================================================  =========

``--chain``, ``--store`` and ``--deployment`` default to ``$SECAGG_CHAIN``, ``$SECAGG_STORE`` and
``$SECAGG_DEPLOYMENT``; ``eval "$(secagg devnet up --dir .devnet)"`` sets the first two. The
passphrase of ``--account`` comes from ``--passphrase-file``, ``$SECAGG_PASSPHRASE`` or a prompt.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from secagg.chain import Chain, Contracts, Deployment, Phase
from secagg.errors import ConfigError, SecAggError
from secagg.store import DirectoryStore, IpfsStore, Store

from .errors import ServiceError

__all__ = ["add_role_commands"]

FAILED = 1
CHAIN_ENV, STORE_ENV, DEPLOYMENT_ENV = "SECAGG_CHAIN", "SECAGG_STORE", "SECAGG_DEPLOYMENT"
DEVNET_FILE = "devnet.json"


# -- opening what the roles share -------------------------------------------------------------
def connect_chain(url: str | None) -> Chain:
    """A node other processes can reach: an http(s) URL.

    Raises
    ------
    ConfigError
        No URL, or ``embedded``/``anvil`` (a node private to one process).
    """
    if not url:
        raise ConfigError(f"give --chain URL (or set ${CHAIN_ENV})", parameter="chain")
    if not url.startswith(("http://", "https://")):
        raise ConfigError(
            f"--chain is the http(s) URL of a node every party reaches, not {url!r}: "
            "`secagg devnet up` starts one",
            parameter="chain",
        )
    return Chain.connect(url)


def connect_store(spec: str | None) -> Store:
    """``ipfs:URL`` (an IPFS daemon's RPC) or ``dir:PATH`` (a directory every process on this
    machine shares).

    Raises
    ------
    ConfigError
        Anything else (``memory`` lives in one process).
    """
    if spec and spec.startswith("ipfs:") and len(spec) > 5:
        return IpfsStore(spec[5:])
    if spec and spec.startswith("dir:") and len(spec) > 4:
        return DirectoryStore(spec[4:])
    raise ConfigError(
        f"--store is ipfs:URL or dir:PATH (or ${STORE_ENV}), not {spec!r}: "
        "`secagg devnet up` starts an IPFS daemon",
        parameter="store",
    )


def read_deployment(path: str | None) -> Deployment:
    if not path:
        raise ConfigError(
            f"give --deployment FILE (or set ${DEPLOYMENT_ENV})", parameter="deployment"
        )
    try:
        data = json.loads(Path(path).read_text())
        return Deployment(**data.get("deployment", data))
    except (OSError, ValueError, TypeError, AttributeError) as exc:
        raise ConfigError(
            f"cannot read the deployment from {path}: {exc}", parameter="deployment"
        ) from exc


def open_contracts(args: argparse.Namespace) -> Contracts:
    """The deployment of ``--deployment`` on ``--chain``, checked to be there.

    Raises
    ------
    ConfigError
        The node has no contract at the coordinator's address.
    """
    deployment = read_deployment(args.deployment)
    chain = connect_chain(args.chain)
    if not chain.w3.eth.get_code(chain.w3.to_checksum_address(deployment.coordinator)):
        raise ConfigError(
            f"no contract at {deployment.coordinator} on {args.chain}: another chain, or a "
            "devnet that was restarted without its state",
            parameter="deployment",
        )
    return Contracts(chain, deployment)


def unlock(args: argparse.Namespace) -> Any:
    from .agents.keystore import load_identity, read_passphrase

    return load_identity(args.account, read_passphrase(args.passphrase_file))


def task_exists(contracts: Contracts, task_id: int) -> bool:
    return bool(contracts.events("TaskCreated", task_id))


def require_task(contracts: Contracts, task_id: int) -> None:
    if task_id < 0 or not task_exists(contracts, task_id):
        raise ServiceError(
            f"there is no task {task_id} at coordinator {contracts.deployment.coordinator}"
        )


# -- account ----------------------------------------------------------------------------------
def _account_new(args: argparse.Namespace) -> int:
    from eth_account import Account

    from .agents.keystore import create_identity, read_passphrase, save_identity
    from .agents.participant import Identity

    identity = create_identity()
    if args.importing:
        try:
            key = Path(args.key_file).read_text().strip()
            identity = Identity(Account.from_key(key), identity.agreement_key)
        except (OSError, ValueError) as exc:
            raise ServiceError(f"cannot read a private key from {args.key_file}: {exc}") from exc
    passphrase = read_passphrase(args.passphrase_file, confirm=True)
    path = save_identity(identity, args.out, passphrase, light=args.light_kdf)
    print(json.dumps({"address": identity.account.address, "keystore": str(path)}))
    return 0


def _account_show(args: argparse.Namespace) -> int:
    try:
        data = json.loads(Path(args.account).read_text())
        print(
            json.dumps(
                {
                    "address": "0x" + data["address"].removeprefix("0x"),
                    "agreement_key": data["secagg"]["agreement_public"],
                }
            )
        )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ServiceError(f"{args.account} is not a secagg keystore: {exc}") from exc
    return 0


def address_of(text: str) -> str:
    """An address given as such or as the keystore file that holds it."""
    if text.startswith("0x") and len(text) == 42:
        return text
    try:
        return "0x" + str(json.loads(Path(text).read_text())["address"]).removeprefix("0x")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ServiceError(f"{text!r} is neither an address nor a keystore: {exc}") from exc


# -- devnet -----------------------------------------------------------------------------------
def _devnet_up(args: argparse.Namespace) -> int:
    from .devnet import up

    net = up(Path(args.dir), block_time=args.block_time)
    print(f"export {CHAIN_ENV}={net.chain}\nexport {STORE_ENV}={net.store}")
    return 0


def _devnet_down(args: argparse.Namespace) -> int:
    from .devnet import down

    for line in down(Path(args.dir)):
        print(line)
    return 0


# -- owner ------------------------------------------------------------------------------------
def _deploy(args: argparse.Namespace) -> int:
    from secagg.chain import deploy

    target = Path(args.out)
    if target.exists():  # before deploying: the addresses must not be lost
        raise ServiceError(f"{target} exists: a deployment file is never overwritten")
    chain = connect_chain(args.chain)
    owner = unlock(args).account
    contracts = deploy(chain, owner, token=args.token)
    out = {"chain_id": chain.chain_id, "deployment": contracts.deployment.as_dict()}
    target.write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps({"deployment": str(target), **contracts.deployment.as_dict()}))
    return 0


def _fund(args: argparse.Namespace) -> int:
    from secagg.chain import ETHER

    if args.tokens and not args.account:
        raise ConfigError(
            "--tokens are minted by the deployer: give its --account", parameter="account"
        )
    contracts = open_contracts(args) if args.tokens else None
    chain = contracts.chain if contracts is not None else connect_chain(args.chain)
    owner = unlock(args).account if args.tokens else None
    for target in args.to:
        address = address_of(target)
        if args.ether:
            chain.fund(address, int(args.ether * ETHER))
        if contracts is not None and owner is not None:
            contracts.mint(owner, address, args.tokens)
        print(json.dumps({"address": address, "ether": args.ether, "tokens": args.tokens}))
    return 0


def _task_create(args: argparse.Namespace) -> int:
    import numpy as np

    from .agents.models import ModelBlob
    from .agents.owner import Economics, publish_task, task_params
    from .agents.task import TaskSpec

    if args.total_samples is None or args.total_samples < 1:
        raise ConfigError(
            "give --total-samples N: the examples all participants hold (w_u = n_u / N)",
            parameter="total_samples",
        )
    contracts = open_contracts(args)
    store = connect_store(args.store)
    owner = unlock(args).account
    try:
        config: dict[str, Any] = json.loads(args.config) if args.config else {}
        if not isinstance(config, dict):
            raise TypeError("not a JSON object")
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"--config is a JSON object of protocol parameters: {exc}") from exc
    config.setdefault("num_clients", args.clients)  # task_params builds (and checks) it
    if args.initial_weights:
        weights = np.load(args.initial_weights, allow_pickle=False).astype(np.float32).ravel()
    else:
        from .learning.trainer import flatten_params, get_params, make_model

        model = make_model(args.model, seed=args.model_seed)
        weights = flatten_params(get_params(model)).numpy().astype(np.float32)
    spec = TaskSpec(
        protocol=args.protocol,
        config=config,
        model=args.model,
        dim=len(weights) + 1,
        total_samples=args.total_samples,
        epochs=args.epochs,
        lr=args.lr,
        batch_size=args.batch_size,
    )
    allowlist = bytes(32)
    if args.allowlist:
        from secagg.chain.allowlist import root

        try:
            listed = Path(args.allowlist).read_text().split()
        except OSError as exc:
            raise ConfigError(f"cannot read --allowlist: {exc}", parameter="allowlist") from exc
        allowlist = root([address_of(a) for a in listed])
    params = task_params(
        spec,
        address_of(args.aggregator),
        rounds=args.rounds,
        phase_blocks=args.phase_blocks,
        registration_blocks=args.registration_blocks,
        economics=Economics(
            stake=args.stake,
            slash=args.slash,
            absence_fee=args.absence_fee,
            keeper_fee=args.keeper_fee,
            reward_per_round=args.reward,
            aggregator_bond=args.bond,
            challenge_blocks=args.challenge_blocks,
        ),
        allowlist_root=allowlist,
    )
    task_id = publish_task(contracts, store, owner, spec, ModelBlob(0, weights), params)
    print(json.dumps({"task": task_id, "protocol": args.protocol, "dim": spec.dim}))
    return 0


def _task_close(args: argparse.Namespace) -> int:
    contracts = open_contracts(args)
    require_task(contracts, args.task)
    owner = unlock(args).account
    if contracts.state(args.task).phase is not Phase.ENDED:
        raise ServiceError(f"task {args.task} has not ended")
    claimed = contracts.credit_of(args.task, owner.address)
    if claimed:
        contracts.claim_rewards(owner, args.task)
    pool = contracts.pool_of(args.task)
    if pool:
        contracts.withdraw_pool(owner, args.task)
    print(json.dumps({"task": args.task, "keeper_fees": claimed, "pool": pool}))
    return 0


# -- participant and aggregator ---------------------------------------------------------------
def _participant(args: argparse.Namespace) -> int:
    from secagg.randomness import SystemRandom

    from .agents.journal import CommitJournal
    from .agents.participant import Participant
    from .agents.service import ActionLog, serve
    from .learning.training import load_shard, load_train

    contracts = open_contracts(args)
    store = connect_store(args.store)
    require_task(contracts, args.task)
    identity = unlock(args)
    data = Path(args.data)
    if not data.exists():
        raise ServiceError(f"--data {data} does not exist")
    train: Callable[..., Any] | None = None
    shard = None
    if args.train:
        fn = load_train(args.train)
        train = lambda weights, context: fn(weights, data, context)  # noqa: E731
    else:
        shard = load_shard(data)
    address = identity.account.address
    state = Path(args.state) if args.state else default_state_dir(address)
    key = f"{contracts.chain.chain_id}-{contracts.deployment.coordinator}-task-{args.task}"
    journal = CommitJournal(state / key)
    log = ActionLog("participant", args.task, as_json=args.json)
    agent = Participant(
        contracts, store, args.task, identity, shard, SystemRandom(), log,  # type: ignore[arg-type]
        train=train, journal=journal,
    )  # fmt: skip
    agent.ledger.sync()
    _refuse_he(agent.ledger.protocol(store))
    if address not in agent.ledger.members:
        if agent.ledger.phase is not Phase.REGISTRATION:
            raise ServiceError(
                f"registration of task {args.task} is closed and {address} is no member"
            )
        agent.register()
        log.emit("registered", address=address)
    else:
        log.emit(
            "resumed", address=address, round=agent.ledger.round, phase=agent.ledger.phase.name
        )

    def finished() -> bool:
        ledger = agent.ledger
        return agent.settled or (ledger.phase is Phase.ENDED and address not in ledger.members)

    serve(agent, log, finished=finished, poll=args.poll, timeout=args.timeout)
    log.emit("done", balance=contracts.balance_of(address))
    return 0


def default_state_dir(address: str) -> Path:
    """``$XDG_STATE_HOME/secagg/<address>`` (default ``~/.local/state``): the same wherever the
    process is started from, so a restart finds its journal."""
    base = os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state"
    return Path(base) / "secagg" / address


def _refuse_he(proto: Any) -> None:
    from secagg.protocols.he import HEProtocol

    if isinstance(proto, HEProtocol):
        raise ServiceError(
            f"{proto.name} tasks need a key-holder process, not offered by `secagg` yet"
        )


def _aggregator(args: argparse.Namespace) -> int:
    from .agents.aggregator import Aggregator
    from .agents.service import ActionLog, serve

    contracts = open_contracts(args)
    store = connect_store(args.store)
    require_task(contracts, args.task)
    account = unlock(args).account
    log = ActionLog("aggregator", args.task, as_json=args.json)
    agent = Aggregator(contracts, store, args.task, account, log)
    agent.ledger.sync()
    _refuse_he(agent.ledger.protocol(store))
    if agent.ledger.aggregator != account.address:
        raise ServiceError(f"{account.address} is not the aggregator of task {args.task}")
    params = contracts.params(args.task)
    state = contracts.state(args.task)
    if params.aggregator_bond and not contracts.bond_of(args.task):
        if state.phase is Phase.REGISTRATION:
            receipt = contracts.post_bond(account, args.task)
            log.emit(
                "bond",
                amount=params.aggregator_bond,
                tx=bytes(receipt["transactionHash"]).hex(),
            )
    else:
        log.emit("resumed", round=state.round, phase=state.phase.name)
    serve(
        agent, log, finished=lambda: agent.ledger.phase is Phase.ENDED,
        poll=args.poll, timeout=args.timeout,
    )  # fmt: skip
    if contracts.credit_of(args.task, account.address):
        contracts.claim_rewards(account, args.task)
    bond = contracts.bond_of(args.task)
    if bond:
        contracts.withdraw_bond(account, args.task)
    log.emit("done", bond_returned=bond, balance=contracts.balance_of(account.address))
    return 0


# -- status -----------------------------------------------------------------------------------
def _status(args: argparse.Namespace) -> int:
    from .agents.ledger import TaskLedger

    contracts = open_contracts(args)
    require_task(contracts, args.task)
    ledger = TaskLedger(contracts, args.task)
    ledger.sync()
    state = contracts.state(args.task)
    params = contracts.params(args.task)
    block = contracts.chain.block_number
    summary = {
        "task": args.task,
        "round": state.round,
        "rounds": params.num_rounds,
        "phase": state.phase.name,
        "deadline": state.deadline,
        "block": block,
        "aggregator": ledger.aggregator,
        "members": [
            {
                "id": i,
                "address": a,
                "stake": (m := contracts.member(args.task, a)).stake,
                "status": m.status.name if m.round == state.round else "-",
                "credit": contracts.credit_of(args.task, a),
                "balance": contracts.balance_of(a),
            }
            for i, a in enumerate(ledger.members)
        ],
        "rounds_done": {
            r: {
                "outcome": p.outcome,
                "survivors": sorted(ledger.survivors(r)),
                "model": ledger.models[r][0] if r in ledger.models else None,
                "sha256": ledger.models[r][1].hex() if r in ledger.models else None,
            }
            for r, p in sorted(ledger.rounds.items())
        },
        "pool": contracts.pool_of(args.task),
        "bond": contracts.bond_of(args.task),
    }
    if args.json:
        print(json.dumps(summary))
        return 0
    console = Console()
    console.print(
        f"task {args.task}: round {state.round}/{params.num_rounds}, phase "
        f"[bold]{state.phase.name}[/] (deadline block {state.deadline}, now {block}); "
        f"pool {summary['pool']}, aggregator bond {summary['bond']}"
    )
    members = Table("id", "address", "status", "stake", "credit", "balance", title="members")
    for m in summary["members"]:
        members.add_row(
            *(str(m[k]) for k in ("id", "address", "status", "stake", "credit", "balance"))
        )
    console.print(members)
    rounds = Table("round", "outcome", "U", "model CID", "sha256", title="rounds")
    for r, done in summary["rounds_done"].items():
        sha = done["sha256"]
        rounds.add_row(
            str(r), str(done["outcome"] or "open"), str(done["survivors"]),
            str(done["model"] or "-"), sha[:16] + "…" if sha else "-",
        )  # fmt: skip
    console.print(rounds)
    return 0


# -- data ---------------------------------------------------------------------------------------
def _data_digits(args: argparse.Namespace) -> int:
    from .learning.trainer import split_digits
    from .learning.training import save_shard

    federation = split_digits(args.clients, alpha=args.alpha, seed=args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for u, shard in federation.clients.items():
        save_shard(shard, out / f"shard-{u}.npz")
    save_shard(federation.test, out / "test.npz")
    total = sum(len(s) for s in federation.clients.values())
    print(json.dumps({"shards": args.clients, "total_samples": total, "out": str(out)}))
    return 0


# -- the parser ---------------------------------------------------------------------------------
def _handled(fn: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Runs ``fn``; a refusal (any :class:`SecAggError`) is one red line and exit status 1."""

    def run(args: argparse.Namespace) -> int:
        try:
            return fn(args)
        except SecAggError as exc:
            Console(stderr=True, soft_wrap=True).print(f"[red]{type(exc).__name__}: {exc}[/]")
            return FAILED

    return run


def _connection(p: argparse.ArgumentParser, *, store: bool = True, deployment: bool = True) -> None:
    p.add_argument("--chain", default=os.environ.get(CHAIN_ENV), help=f"node URL (${CHAIN_ENV})")
    if store:
        p.add_argument(
            "--store", default=os.environ.get(STORE_ENV), help=f"ipfs:URL | dir:PATH (${STORE_ENV})"
        )
    if deployment:
        p.add_argument(
            "--deployment", default=os.environ.get(DEPLOYMENT_ENV),
            help=f"the file `secagg deploy` wrote (${DEPLOYMENT_ENV})",
        )  # fmt: skip


def _keystore(p: argparse.ArgumentParser, *, required: bool = True) -> None:
    p.add_argument("--account", required=required, help="keystore file (`secagg account new`)")
    p.add_argument("--passphrase-file", help="else $SECAGG_PASSPHRASE, else a prompt")


def _service(p: argparse.ArgumentParser) -> None:
    p.add_argument("--task", type=int, required=True)
    p.add_argument("--poll", type=float, default=1.0, help="seconds between looks when idle")
    p.add_argument("--timeout", type=float, default=None, help="give up after this many seconds")
    p.add_argument("--json", action="store_true", help="log lines as JSON objects")


def add_role_commands(sub: Any) -> None:
    """Adds the role subcommands to the ``secagg`` parser's subparsers."""
    account = sub.add_parser("account", help="keystore accounts (address + agreement key c_u)")
    acc = account.add_subparsers(dest="action", required=True)
    for name, text in (("new", "a new account"), ("import", "an existing private key")):
        p = acc.add_parser(name, help=text)
        p.add_argument("--out", required=True, help="the keystore file to create (0600)")
        p.add_argument("--passphrase-file", help="else $SECAGG_PASSPHRASE, else a prompt")
        p.add_argument("--light-kdf", action="store_true", help="scrypt n=2^12: dev accounts only")
        if name == "import":
            p.add_argument("--key-file", required=True, help="file with the hex private key")
        p.set_defaults(func=_handled(_account_new), importing=name == "import")
    p = acc.add_parser("show", help="address and c_u^PK of a keystore (no passphrase)")
    p.add_argument("--account", required=True)
    p.set_defaults(func=_handled(_account_show))

    devnet = sub.add_parser("devnet", help="local anvil + IPFS daemon for multi-process runs")
    dev = devnet.add_subparsers(dest="action", required=True)
    p = dev.add_parser("up", help="start both; prints `export SECAGG_CHAIN=... SECAGG_STORE=...`")
    p.add_argument("--dir", default=".devnet", help="their state, logs and PIDs")
    p.add_argument("--block-time", type=float, default=1.0, help="seconds per block")
    p.set_defaults(func=_handled(_devnet_up))
    p = dev.add_parser("down", help="stop both by PID (their state stays in --dir)")
    p.add_argument("--dir", default=".devnet")
    p.set_defaults(func=_handled(_devnet_down))

    p = sub.add_parser("deploy", help="deploy the token and the RoundCoordinator")
    _connection(p, store=False, deployment=False)
    _keystore(p)
    p.add_argument("--token", help="an existing ERC-20 instead of a new reward token")
    p.add_argument("--out", default="deployment.json")
    p.set_defaults(func=_handled(_deploy))

    p = sub.add_parser("fund", help="dev-chain ether (node's unlocked account) and tokens")
    _connection(p, store=False)
    _keystore(p, required=False)
    p.add_argument("--to", nargs="+", required=True, help="addresses or keystore files")
    p.add_argument("--ether", type=float, default=1.0)
    p.add_argument("--tokens", type=int, default=0, help="minted by --account (the deployer)")
    p.set_defaults(func=_handled(_fund))

    task = sub.add_parser("task", help="the task owner's commands")
    tsk = task.add_subparsers(dest="action", required=True)
    p = tsk.add_parser("create", help="publish a task: protocol, model, recipe, economics")
    _connection(p)
    _keystore(p)
    p.add_argument("--aggregator", required=True, help="its address or keystore file")
    p.add_argument("--protocol", default="secaggplus", choices=["plain", "secagg", "secaggplus"])
    p.add_argument("--clients", type=int, required=True, help="n: the most members")
    p.add_argument("--config", help='more protocol parameters as JSON, e.g. {"dropout_rate": 0.3}')
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--phase-blocks", type=int, default=30, help="blocks per phase")
    p.add_argument(
        "--registration-blocks", type=int, help="blocks to register (default: --phase-blocks)"
    )
    p.add_argument("--total-samples", type=int, help="N: examples of all participants")
    p.add_argument("--model", default="mlp", help="the default recipe's architecture")
    p.add_argument("--model-seed", type=int, default=0)
    p.add_argument("--initial-weights", help=".npy of flat initial weights (custom models)")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--lr", type=float, default=0.3)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--stake", type=int, default=100)
    p.add_argument("--slash", type=int, default=50)
    p.add_argument("--absence-fee", type=int, default=10)
    p.add_argument("--keeper-fee", type=int, default=5)
    p.add_argument("--reward", type=int, default=100, help="per round, split among U")
    p.add_argument("--bond", type=int, default=200, help="the aggregator's bond")
    p.add_argument("--challenge-blocks", type=int, help="default: --phase-blocks")
    p.add_argument("--allowlist", help="file of addresses (or keystores) allowed to register")
    p.set_defaults(func=_handled(_task_create))
    p = tsk.add_parser("close", help="after the end: claim keeper fees, withdraw the pool")
    _connection(p, store=False)
    _keystore(p)
    p.add_argument("--task", type=int, required=True)
    p.set_defaults(func=_handled(_task_close))

    p = sub.add_parser("participant", help="one client: register, then every round")
    _connection(p)
    _keystore(p)
    _service(p)
    p.add_argument("--data", required=True, help="this client's data (a shard .npz by default)")
    p.add_argument("--train", help="module:function, see secagg.clients.learning.training")
    p.add_argument("--state", help="state directory (default $XDG_STATE_HOME/secagg/<address>)")
    p.set_defaults(func=_handled(_participant))

    p = sub.add_parser("aggregator", help="the task's aggregator: availability, finalize")
    _connection(p)
    _keystore(p)
    _service(p)
    p.set_defaults(func=_handled(_aggregator))

    p = sub.add_parser("status", help="a task's round, phase, members, U, models, balances")
    _connection(p, store=False)
    p.add_argument("--task", type=int, required=True)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_handled(_status))

    data = sub.add_parser("data", help="example data for local runs")
    dat = data.add_subparsers(dest="action", required=True)
    p = dat.add_parser("digits", help="the digits split: shard-<u>.npz per client + test.npz")
    p.add_argument("--clients", type=int, required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--alpha", type=float, default=0.5, help="Dirichlet concentration")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_handled(_data_digits))
