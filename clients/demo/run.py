"""The demo: federated training of the digits model, coordinated on chain, data in the store.

:class:`Demo` plays every part in one process, each with its own account, state and view
of the chain: the task owner (who is also the HE key holder, and the keeper who calls
``advance`` when a phase is due), n participants and the aggregator. The participants and
the aggregator only ever talk through the chain and the store.

Time on a dev chain only moves when everyone is idle: each pass steps every live agent once;
when a pass does nothing, the keeper advances the phase (mining empty blocks up to the
deadline where the phase runs to its deadline). Faults are injected between passes: a
killed participant stops for the rest of the round and comes back, as a fresh process with
only its identity, at the next round; a killed aggregator is replaced by a fresh one that
knows nothing but the chain and the store.
"""

from __future__ import annotations

import math
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from secagg.chain import AnvilNode, Chain, Contracts, Phase, deploy
from secagg.chain.errors import NodeUnavailableError
from secagg.dp import DistributedDP, Mechanism
from secagg.dp.accounting import PrivacyAccountant
from secagg.errors import ConfigError
from secagg.graph import corrupted_clients
from secagg.protocol import KeyMaterial, Protocol
from secagg.protocols.he import HEProtocol
from secagg.protocols.secaggplus import SecAggPlus
from secagg.randomness import SeededRandom
from secagg.store import (
    DirectoryStore,
    IpfsNode,
    IpfsStore,
    MemoryStore,
    Store,
    StoreUnavailableError,
)

from ..agents.aggregator import Aggregator, KeyHolder
from ..agents.keeper import phase_is_due
from ..agents.ledger import TaskLedger
from ..agents.metrics import AGGREGATOR, KEY_HOLDER, PARTICIPANTS, Metrics
from ..agents.models import ModelBlob
from ..agents.owner import Economics, publish_task, task_params
from ..agents.participant import Identity, Participant, training_seed
from ..agents.task import TaskSpec, build_protocol
from ..agents.verify import verify_round
from ..errors import VerificationError
from ..learning.trainer import (
    Federation,
    Trainer,
    fedavg_step,
    flatten_params,
    get_params,
    make_model,
    split_digits,
    unflatten_params,
    weighted_sum,
)

__all__ = ["Demo", "DemoConfig", "DemoResult", "Fault", "RoundReport", "open_chain", "open_store"]

TOKENS = 10_000
STAKE = 100
SLASH = 50
ABSENCE_FEE = 10  # taken from a member that posts nothing in a round's first phase
KEEPER_FEE = 5  # from the pool to whoever calls the advance that walks over the members
REWARD_PER_ROUND = 100
AGGREGATOR_BOND = 200  # forfeited to a round's U if it withholds a round it could finalize
ECONOMICS = Economics(
    stake=STAKE,
    slash=SLASH,
    absence_fee=ABSENCE_FEE,
    keeper_fee=KEEPER_FEE,
    reward_per_round=REWARD_PER_ROUND,
    aggregator_bond=AGGREGATOR_BOND,
)


@dataclass(frozen=True)
class Fault:
    """Participant ``client`` dies when ``phase`` of ``round`` opens (before acting in it)."""

    round: int
    client: int
    phase: Phase


@dataclass(frozen=True)
class DemoConfig:
    """Everything a demo run depends on; equal configs give equal runs.

    ``chain``: ``"embedded"`` (eth-tester), ``"anvil"`` (started here) or an RPC URL.
    ``store``: ``"memory"``, ``"dir:PATH"``, ``"ipfs"`` (a js-ipfs node started here) or
    ``"ipfs:URL"``. ``dropout``: the fraction of clients that vanish each round, each at a
    phase drawn at random. ``faults`` and ``aggregator_crashes`` add planned failures;
    ``store_outages`` stops the IPFS daemon (``store="ipfs"``) when (round, phase) opens and
    restarts it on its repository, at the same address, once every agent has idled;
    ``chain_outages`` does the same with anvil (``chain="anvil"``, which then keeps its chain
    in a state file across the restart).
    """

    protocol: str = "secaggplus"
    clients: int = 10
    rounds: int = 5
    dropout: float = 0.0
    seed: int = 0
    chain: str = "embedded"
    store: str = "memory"
    model: str = "mlp"
    alpha: float = 0.5
    epochs: int = 2
    lr: float = 0.3
    batch_size: int = 32
    clip: float = 2.0
    quant_bits: int = 24
    faults: tuple[Fault, ...] = ()
    aggregator_crashes: tuple[tuple[int, Phase], ...] = ()
    store_outages: tuple[tuple[int, Phase], ...] = ()
    chain_outages: tuple[tuple[int, Phase], ...] = ()
    dp_noise: float = 0.0
    dp_clip: float = 1.0
    dp_bits: int = 20
    dp_budget: float | None = None
    dp_sgd_noise: float = 0.0
    dp_sgd_clip: float = 1.0

    def __post_init__(self) -> None:
        if self.clients < 3:
            raise ConfigError("the demo needs at least 3 clients", parameter="clients")
        if self.rounds < 1:
            raise ConfigError("at least one round", parameter="rounds")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError("dropout is a fraction in [0, 1)", parameter="dropout")
        if self.store_outages and self.store != "ipfs":
            raise ConfigError(
                "store outages need the IPFS daemon the demo starts (store='ipfs')",
                parameter="store_outages",
            )
        if self.dp_noise < 0:
            raise ConfigError(
                "dp_noise is a noise multiplier >= 0 (0: no DP)", parameter="dp_noise"
            )
        if self.dp_sgd_noise < 0 or not self.dp_sgd_clip > 0:
            raise ConfigError(
                "dp_sgd_noise >= 0 (0: no DP-SGD) and dp_sgd_clip > 0", parameter="dp_sgd_noise"
            )
        self._check_protocol()
        if self.chain_outages and self.chain != "anvil":
            raise ConfigError(
                "chain outages need the anvil node the demo starts (chain='anvil')",
                parameter="chain_outages",
            )

    def _check_protocol(self) -> None:
        """Builds the run's protocol; a refusal is restated in the demo's own options
        (--clients, --dropout, --dp-*), which are all a demo user can change."""
        try:
            build_protocol(self.protocol, self.protocol_config())
        except ConfigError as exc:
            if self.dp_noise > 0:
                raise  # the DP check names --dp-noise's numbers itself
            options = f"--protocol {self.protocol} --clients {self.clients}"
            if self.protocol in ("secagg", "secaggplus"):
                fits = [n for n in range(self.clients, 1001) if self._builds(n)]
                if not fits:
                    raise ConfigError(
                        f"{options} --dropout {self.dropout:g}: the masking parameters are "
                        f"sized for max(10 %, dropout) of the clients dropping out and 5 % "
                        f"corrupt; no number of clients allows --dropout {self.dropout:g} "
                        "(lower it)",
                        parameter="dropout",
                    ) from exc
                raise ConfigError(
                    f"{options} --dropout {self.dropout:g}: the masking parameters (sized for "
                    f"max(10 %, dropout) dropping out and 5 % corrupt) need --clients >= "
                    f"{fits[0]}",
                    parameter="clients",
                ) from exc
            raise ConfigError(f"{options}: {exc}", parameter="clients") from exc

    def _builds(self, clients: int) -> bool:
        try:
            build_protocol(self.protocol, self.protocol_config(clients))
        except ConfigError:
            return False
        return True

    def protocol_config(self, clients: int | None = None) -> dict[str, Any]:
        """The keyword arguments of ``protocols.get`` for this run (the masking protocols'
        k and t are chosen for ``max(10%, dropout)``, as :mod:`secagg.clients.bench.grid` does);
        ``clients``: for another number of clients (without DP)."""
        n = clients or self.clients
        if self.protocol == "ckks":
            config: dict[str, Any] = {"num_clients": n, "clip": self.clip}
        else:
            ring_bits = 32 if n * 2**self.quant_bits <= 2**32 else 64
            config = {
                "num_clients": n,
                "clip": self.clip,
                "quant_bits": self.quant_bits,
                "ring_bits": ring_bits,
            }
        if self.protocol in ("secagg", "secaggplus"):  # sized for the dropout the run injects
            config["dropout_rate"] = max(0.1, self.dropout)
        dp = self.dp()
        if dp is not None:  # no sum with fewer honest noise shares than calibrated for
            config["min_survivors"] = self._dp_survivors()
            config["dp"] = dp.to_dict()
        return config

    def _dp_survivors(self) -> int:
        """With DP, the fewest inputs a round may sum: all but the dropout the run tolerates,
        n - ceil(max(10 %, dropout) n)."""
        return self.clients - math.ceil(max(0.1, self.dropout) * self.clients)

    def dp_sgd_recipe(self, total_samples: int) -> dict[str, float] | None:
        """Example-level DP-SGD for every participant (``dp_sgd_noise`` > 0): delta = 1/N over
        all N training examples."""
        if self.dp_sgd_noise <= 0:
            return None
        return {
            "noise_multiplier": self.dp_sgd_noise,
            "max_grad_norm": self.dp_sgd_clip,
            "delta": 1.0 / total_samples,
        }

    def dp(self) -> DistributedDP | None:
        """With ``dp_noise`` > 0: noise calibrated for all but the dropout the run tolerates
        (m = n - ceil(max(10 %, dropout) n) less SecAgg's floor(5 % n) corrupt clients,
        whose shares do not count), delta = 1e-5 (well below 1/n: delta = 1/n would allow
        publishing one random client's update);
        the exact discrete Gaussian, or for ``ckks`` the (floating-point) continuous one."""
        if self.dp_noise <= 0:
            return None
        masking = self.protocol in ("secagg", "secaggplus")  # sized for SecAgg+'s default 5 %
        corrupt = corrupted_clients(self.clients, 0.05) if masking else 0
        return DistributedDP(
            l2_clip=self.dp_clip,
            noise_multiplier=self.dp_noise,
            min_contributors=self._dp_survivors() - corrupt,
            delta=1e-5,
            bits=self.dp_bits,
            epsilon_budget=self.dp_budget,
            mechanism=Mechanism.CONTINUOUS_GAUSSIAN if self.protocol == "ckks" else Mechanism.DDG,
        )


@dataclass
class RoundReport:
    """One round: its outcome, accuracy and costs (times in seconds)."""

    round: int
    outcome: str
    survivors: list[int]
    accuracy: float | None
    plain_accuracy: float | None
    epsilon: float | None
    example_epsilon: float | None
    seconds: float
    phase_seconds: dict[str, float]
    bytes_per_client: float
    phase_bytes_per_client: dict[str, float]
    gas_per_participant: float
    aggregator_seconds: float
    verified: bool | None
    model_sha256: str | None
    notes: list[str]


@dataclass
class DemoResult:
    config: dict[str, Any]
    task_id: int
    deployment: dict[str, str]
    initial_accuracy: float
    rounds: list[RoundReport]
    balances: dict[int, int]
    stakes_returned: dict[int, int]
    slashed: dict[int, int]
    absence_fees: dict[int, int]
    keeper_fees: dict[int, int]
    rewards: dict[int, int]
    total_seconds: float

    @property
    def round_rewards(self) -> dict[int, int]:
        """What each client claimed for being in a round's U: its claims less the keeper
        fees it was credited for advancing phases (clients with nothing left out)."""
        out = {u: v - self.keeper_fees.get(u, 0) for u, v in self.rewards.items()}
        return {u: v for u, v in out.items() if v}

    @property
    def final_accuracy(self) -> float:
        done = [r.accuracy for r in self.rounds if r.accuracy is not None]
        return done[-1] if done else self.initial_accuracy

    @property
    def plain_final_accuracy(self) -> float:
        done = [r.plain_accuracy for r in self.rounds if r.plain_accuracy is not None]
        return done[-1] if done else self.initial_accuracy

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["final_accuracy"] = self.final_accuracy
        out["plain_final_accuracy"] = self.plain_final_accuracy
        return out


def open_chain(spec: str, stack: ExitStack, started: list[AnvilNode] | None = None) -> Chain:
    """``embedded``, ``anvil`` (started now, stopped with ``stack``, appended to ``started``;
    its chain kept in a state file so it survives a restart) or a JSON-RPC URL."""
    if spec == "embedded":
        return Chain.embedded()
    if spec == "anvil":
        state = Path(stack.enter_context(tempfile.TemporaryDirectory())) / "anvil-state.json"
        node = stack.enter_context(AnvilNode(state=state))
        if started is not None:
            started.append(node)
        return Chain.connect(node.url)
    if spec.startswith(("http://", "https://")):
        return Chain.connect(spec)
    raise ConfigError(
        f"--chain is embedded, anvil or an http(s) URL, not {spec!r}", parameter="chain"
    )


def open_store(spec: str, stack: ExitStack, started: list[IpfsNode] | None = None) -> Store:
    """``memory``, ``dir:PATH``, ``ipfs`` (a node started now, appended to ``started``) or
    ``ipfs:URL``."""
    if spec == "memory":
        return MemoryStore()
    if spec.startswith("dir:") and len(spec) > 4:
        return DirectoryStore(spec[4:])
    if spec == "ipfs":
        node = stack.enter_context(IpfsNode())
        if started is not None:
            started.append(node)
        return IpfsStore(node.url)
    if spec.startswith("ipfs:") and len(spec) > 5:
        return IpfsStore(spec[5:])
    raise ConfigError(
        f"--store is memory, dir:PATH, ipfs or ipfs:URL, not {spec!r}", parameter="store"
    )


def round_phases(proto: Protocol[Any]) -> tuple[Phase, ...]:
    """The chain phases a round of ``proto`` goes through, in order."""
    if isinstance(proto, SecAggPlus):
        return (Phase.SHARE_KEYS, Phase.COMMIT, Phase.REVEAL, Phase.UNMASK, Phase.FINALIZE)
    return (Phase.COMMIT, Phase.REVEAL, Phase.FINALIZE)


class Demo:
    """One run of the demo; use as a context manager (it may start anvil or js-ipfs).

    Parameters
    ----------
    config:
        The run.
    on_phase:
        Called with (round, phase) whenever the chain enters a phase (progress display).
    clock:
        Time source for the phase timings.
    aggregator_class:
        The aggregator's implementation (tests plug in dishonest ones).
    aggregator_store:
        Wraps the store the aggregator is handed (tests record what it reads).
    participant_store:
        Client index -> its store, from the shared one (tests record what each reads).
    participant_classes:
        Client index -> implementation, for clients that differ (tests plug in cheaters).
    """

    def __init__(
        self,
        config: DemoConfig,
        *,
        on_phase: Callable[[int, Phase], None] | None = None,
        clock: Callable[[], float] = time.perf_counter,
        aggregator_class: type[Aggregator] = Aggregator,
        aggregator_store: Callable[[Store], Store] = lambda store: store,
        participant_store: Callable[[int, Store], Store] = lambda u, store: store,
        participant_classes: Mapping[int, type[Participant]] | None = None,
    ) -> None:
        self.participant_classes = dict(participant_classes or {})
        self.config = config
        self.aggregator_class = aggregator_class
        self.aggregator_store = aggregator_store
        self.participant_store = participant_store
        self.on_phase = on_phase or (lambda r, p: None)
        self.clock = clock
        self.metrics = Metrics()
        self.rng = SeededRandom(f"secagg-demo/{config.seed}".encode())
        self._stack = ExitStack()
        self.chain: Chain | None = None
        self.store: Store | None = None
        self.ipfs: list[IpfsNode] = []  # the daemons this demo started, if any
        self.anvil: list[AnvilNode] = []
        self._outages: list[tuple[AnvilNode | IpfsNode, int]] = []  # stopped: (daemon, port)

    def __enter__(self) -> Demo:
        """Opens the chain and the store under one exit stack: when the second fails to
        start, the first (an anvil it started) is stopped before the error propagates."""
        try:
            self.chain = open_chain(self.config.chain, self._stack, self.anvil)
            self.store = open_store(self.config.store, self._stack, self.ipfs)
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    # -- setup ---------------------------------------------------------------------------------
    def _setup(self) -> None:
        """Deploy, publish the task, enrol the participants, start the aggregator."""
        assert self.chain is not None and self.store is not None
        chain, rng = self.chain, self.rng
        self.deployer = chain.new_account(rng.fork("deployer"))
        self.owner = chain.new_account(rng.fork("owner"))
        self.aggregator_account = chain.new_account(rng.fork("aggregator"))
        self.contracts: Contracts = deploy(chain, self.deployer)
        cfg = self.config
        self.federation: Federation = split_digits(cfg.clients, alpha=cfg.alpha, seed=cfg.seed)
        self.proto = self._protocol()
        self.keys: KeyMaterial | None = self.proto.keygen(rng.fork("task-keys"))
        self._publish_task()
        self._enrol()

    def _publish_task(self) -> None:
        """The owner stores the initial model and the spec, and creates the task on chain."""
        cfg = self.config
        assert self.chain is not None and self.store is not None
        chain, store, rng = self.chain, self.store, self.rng
        initial = make_model(cfg.model, seed=cfg.seed)
        self.like = get_params(initial)
        weights = flatten_params(self.like).numpy().astype(np.float32)
        total_samples = sum(len(s) for s in self.federation.clients.values())
        spec = TaskSpec(
            protocol=cfg.protocol,
            config=cfg.protocol_config(),
            model=cfg.model,
            dim=len(weights) + 1,
            total_samples=total_samples,
            epochs=cfg.epochs,
            lr=cfg.lr,
            batch_size=cfg.batch_size,
            he_context=store.put(self.keys.public) if self.keys is not None else None,
            dp_sgd=cfg.dp_sgd_recipe(total_samples),
        )
        params = task_params(
            spec,
            self.aggregator_account.address,
            rounds=cfg.rounds,
            phase_blocks=3 * cfg.clients + 10,  # every member can act (a block per transaction)
            economics=ECONOMICS,
        )
        self.identities = {
            u: Identity.generate(
                chain.new_account(rng.fork(f"participant/{u}/account")),
                rng.fork(f"participant/{u}/identity"),
            )
            for u in range(cfg.clients)
        }
        for identity in self.identities.values():  # funded before Registration opens
            self.contracts.mint(self.deployer, identity.account.address, TOKENS)
        self.contracts.mint(self.deployer, self.owner.address, TOKENS)
        self.contracts.approve(self.owner, params.reward_pool)
        self.task_id = publish_task(
            self.contracts, store, self.owner, spec, ModelBlob(0, weights), params
        )
        self.contracts.mint(self.deployer, self.aggregator_account.address, TOKENS)
        self.contracts.post_bond(self.aggregator_account, self.task_id)

    def _enrol(self) -> None:
        """Participants register; the aggregator (and key holder) start following the task."""
        assert self.store is not None
        cfg = self.config
        self.participants: dict[int, Participant | None] = {}
        for u in range(cfg.clients):
            agent = self._participant(u)
            agent.register()
            self.participants[u] = agent
        self.ledger = TaskLedger(self.contracts, self.task_id)
        self.ledger.sync()
        self.ids = {u: self.ledger.id_of(i.account.address) for u, i in self.identities.items()}
        self.aggregator = self._aggregator()
        self.key_holder: KeyHolder | None = None
        if self.keys is not None and isinstance(self.proto, HEProtocol):
            self.key_holder = KeyHolder(
                self.contracts, self.store, self.task_id, self.keys, self._deliver, self.metrics,
                clock=self.clock,
            )  # fmt: skip
        self.trainer = Trainer(make_model(cfg.model), epochs=cfg.epochs, lr=cfg.lr,
                               batch_size=cfg.batch_size)  # fmt: skip

    def _protocol(self) -> Protocol[Any]:

        proto = build_protocol(self.config.protocol, self.config.protocol_config())
        return proto

    def _participant(self, u: int) -> Participant:
        """A fresh participant process for client ``u`` (its identity persists)."""
        assert self.store is not None
        return self.participant_classes.get(u, Participant)(
            self.contracts,
            self.participant_store(u, self.store),
            self.task_id,
            self.identities[u],
            self.federation.clients[u],
            self.rng.fork(f"participant/{u}/secrets"),
            self.metrics,
            clock=self.clock,
        )

    def _aggregator(self) -> Aggregator:
        assert self.store is not None
        public = self.keys.public_only() if self.keys is not None else None
        return self.aggregator_class(
            self.contracts,
            self.aggregator_store(self.store),
            self.task_id,
            self.aggregator_account,
            self.metrics,
            keys=public,
            clock=self.clock,
        )

    def _deliver(self, round: int, cid: str) -> None:
        self.aggregator.accept_decryption(round, cid)

    # -- faults --------------------------------------------------------------------------------
    def _planned_faults(self) -> dict[tuple[int, Phase], set[int]]:
        """(round, phase) -> participants (by demo index) that die when it opens."""
        plan: dict[tuple[int, Phase], set[int]] = {}
        phases = round_phases(self.proto)[:-1]  # participants act in every phase but Finalize
        draw = np.random.default_rng(self.config.seed + 1)  # which clients vanish: not secret
        k = math.floor(self.config.dropout * self.config.clients)
        for r in range(1, self.config.rounds + 1):
            for u in draw.choice(self.config.clients, size=k, replace=False):
                phase = phases[int(draw.integers(len(phases)))]
                plan.setdefault((r, phase), set()).add(int(u))
        for fault in self.config.faults:
            plan.setdefault((fault.round, fault.phase), set()).add(fault.client)
        return plan

    def _on_phase(self, r: int, phase: Phase, plan: dict[tuple[int, Phase], set[int]]) -> None:
        first = round_phases(self.proto)[0]
        if phase in (first, Phase.ENDED):  # killed participants come back as fresh processes
            for u, agent in self.participants.items():
                if agent is None:
                    self.participants[u] = self._participant(u)
        for u in plan.get((r, phase), set()):
            if self.participants.get(u) is not None:
                self.participants[u] = None
                self.metrics.note(r, f"client {self.ids[u]} killed at {phase.name}")
        if phase is Phase.ENDED:  # let the last round's challenge window pass before claims
            assert self.chain is not None
            self.chain.mine(self.contracts.params(self.task_id).challenge_blocks)
        if (r, phase) in self.config.aggregator_crashes:
            self.aggregator = self._aggregator()
            self.metrics.note(r, f"aggregator killed at {phase.name} and restarted")
        for outages, daemons, name in (
            (self.config.store_outages, self.ipfs, "IPFS daemon"),
            (self.config.chain_outages, self.anvil, "anvil"),
        ):
            if (r, phase) in outages:
                (daemon,) = daemons
                self._outages.append((daemon, daemon.port))
                daemon.stop()
                self.metrics.note(r, f"{name} stopped at {phase.name}")
        self.on_phase(r, phase)

    def _end_outage(self, r: int) -> bool:
        """Restart stopped daemons on their data and ports; False when none is down."""
        if not self._outages:
            return False
        for daemon, port in self._outages:
            daemon.start(port=port)
            name = "IPFS daemon" if isinstance(daemon, IpfsNode) else "anvil"
            self.metrics.note(r, f"{name} restarted")
        self._outages.clear()
        return True

    def _step(
        self, r: int, agent: Participant | KeyHolder | Aggregator, *, keep: bool = False
    ) -> bool:
        """One agent's step: it acts on the current phase, or (``keep``) ends the phase if it
        is due. Participants leave a round on any error themselves; the aggregator and key
        holder keep no state, so an unreachable store only makes them wait and try again at
        the next step. A node that does not answer makes every agent wait."""
        try:
            return agent.keep() if keep else agent.act()
        except NodeUnavailableError as exc:  # before acting (its ledger could not sync)
            self.metrics.note(r, f"{type(agent).__name__.lower()} waits for the chain: {exc}")
            return False
        except StoreUnavailableError as exc:
            if isinstance(agent, Participant):
                raise
            self.metrics.note(r, f"{type(agent).__name__.lower()} waits for the store: {exc}")
            return False

    # -- the run -------------------------------------------------------------------------------
    def agents(self) -> Iterator[Participant | KeyHolder | Aggregator]:
        yield from (agent for agent in self.participants.values() if agent is not None)
        if self.key_holder is not None:
            yield self.key_holder
        yield self.aggregator

    def run(self) -> DemoResult:
        """Set up the task, run every round, settle, and report."""
        assert self.store is not None, "use Demo as a context manager"
        start = self.clock()
        self._setup()
        plan = self._planned_faults()
        phase_seconds: dict[int, dict[str, float]] = {}
        seen: tuple[int, Phase] | None = None
        opened = self.clock()
        while True:
            self.ledger.sync()
            now = (self.ledger.round, self.ledger.phase)
            if now != seen:
                if seen is not None and seen[1] is not Phase.REGISTRATION:
                    spent = phase_seconds.setdefault(seen[0], {})
                    spent[seen[1].name.lower()] = self.clock() - opened
                opened, seen = self.clock(), now
                self._on_phase(*now, plan)
            acted = [self._step(now[0], agent) for agent in list(self.agents())]
            if now[1] is Phase.ENDED:
                break
            if any(acted) or self._end_outage(now[0]):
                continue
            # every agent is idle: the first that finds the phase due ends it (the next
            # iteration then opens the new phase, faults first, before anyone acts in it)
            if not any(self._step(now[0], agent, keep=True) for agent in list(self.agents())):
                self._let_time_pass()
        self._end_outage(self.ledger.round)  # the report reads the models back
        for account in (self.owner, self.aggregator_account):  # keeper fees they were credited
            if self.contracts.credit_of(self.task_id, account.address):
                self.contracts.claim_rewards(account, self.task_id)
        if self.contracts.pool_of(self.task_id):
            self.contracts.withdraw_pool(self.owner, self.task_id)
        if self.contracts.bond_of(self.task_id):
            self.contracts.withdraw_bond(self.aggregator_account, self.task_id)
        return self._report(phase_seconds, self.clock() - start)

    def _let_time_pass(self) -> None:
        """Every agent is idle: mine past the phase's deadline, so that the agents end it
        themselves at their next step (they are the keepers). Only if none of them can (all
        participants dead and the phase is due already) does the owner call ``advance``."""
        if phase_is_due(self.contracts, self.ledger):
            self.contracts.advance(self.owner, self.task_id)
            return
        assert self.chain is not None
        self.chain.mine(max(1, self.ledger.deadline - self.chain.block_number + 1))

    # -- reporting -----------------------------------------------------------------------------
    def _accuracy(self, weights: np.ndarray[Any, Any]) -> float:
        params = unflatten_params(torch.from_numpy(np.array(weights)), self.like)
        return self.trainer.accuracy(params, self.federation.test)

    def _report(self, phase_seconds: dict[int, dict[str, float]], total: float) -> DemoResult:
        assert self.store is not None
        ledger, metrics = self.ledger, self.metrics
        ledger.sync()
        by_id = {i: u for u, i in self.ids.items()}
        weights = self.federation.fedavg_weights()
        _, initial_cid, _ = ledger.latest_model(1)
        reference = list(self.like)
        initial_accuracy = self._accuracy(ModelBlob.decode(self.store.get(initial_cid)).weights)
        reports = []
        dp = self.config.dp()
        accountant = None
        if dp is not None:
            dim = sum(p.numel() for p in self.like) + 1
            accountant = PrivacyAccountant(dp, self.config.clients, dim)
        for r in range(1, self.config.rounds + 1):
            postings = ledger.postings(r)
            costs = metrics.costs[r][PARTICIPANTS]
            total_cost = metrics.participants_total(r)
            survivors = sorted(ledger.survivors(r))
            accuracy = plain = None
            verified: bool | None = None
            digest = None
            if postings.outcome == "finalized":
                model = ModelBlob.decode(self.store.get(ledger.models[r][0]))
                survivors = list(model.survivors)  # U3: U less any member whose input was rejected
                accuracy = self._accuracy(model.weights)
                digest = ledger.models[r][1].hex()
                try:
                    verify_round(self.contracts, self.store, self.task_id, r, ledger=ledger)
                    verified = True
                except VerificationError as exc:
                    verified = False
                    metrics.note(r, str(exc))
                reference = self._plain_step(reference, r, [by_id[i] for i in survivors], weights)
                plain = self.trainer.accuracy(reference, self.federation.test)
            outcome = postings.outcome or "unfinished"
            if postings.failed_phase is not None:
                outcome = f"failed at {postings.failed_phase.name}"
            aggregator = metrics.costs[r][AGGREGATOR]["finalize"].seconds
            aggregator += metrics.costs[r][KEY_HOLDER]["decrypt"].seconds
            reports.append(
                RoundReport(
                    round=r,
                    outcome=outcome,
                    survivors=survivors,
                    accuracy=accuracy,
                    plain_accuracy=plain,
                    epsilon=None if accountant is None else accountant.epsilon(r),
                    example_epsilon=max(
                        (
                            p.example_epsilon[r]
                            for p in self.participants.values()
                            if p is not None and r in p.example_epsilon
                        ),
                        default=None,
                    ),
                    seconds=sum(phase_seconds.get(r, {}).values()),
                    phase_seconds=phase_seconds.get(r, {}),
                    bytes_per_client=total_cost.bytes_per_actor,
                    phase_bytes_per_client={p: c.bytes_per_actor for p, c in costs.items()},
                    gas_per_participant=total_cost.gas_per_actor,
                    aggregator_seconds=aggregator,
                    verified=verified,
                    model_sha256=digest,
                    notes=list(metrics.notes.get(r, [])),
                )
            )
        return DemoResult(
            config={
                k: str(v) if isinstance(v, tuple) else v for k, v in asdict(self.config).items()
            },
            task_id=self.task_id,
            deployment=self.contracts.deployment.as_dict(),
            initial_accuracy=initial_accuracy,
            rounds=reports,
            balances={
                u: self.contracts.balance_of(i.account.address) for u, i in self.identities.items()
            },
            stakes_returned=self._amounts("StakeWithdrawn"),
            slashed=self._amounts("Slashed"),
            absence_fees=self._amounts("AbsenceCharged"),
            keeper_fees=self._amounts("KeeperCredited"),
            rewards=self._amounts("RewardClaimed"),
            total_seconds=total,
        )

    def _amounts(self, name: str) -> dict[int, int]:
        """Token amounts of ``name`` events (Slashed, RewardClaimed...) per client."""
        got = self.ledger.amounts.get(name, {})
        return {
            u: got[i.account.address]
            for u, i in self.identities.items()
            if i.account.address in got
        }

    def _plain_step(
        self, params: list[torch.Tensor], r: int, survivors: list[int], weights: dict[int, float]
    ) -> list[torch.Tensor]:
        """Plain FedAvg (no encoding, no chain) over the same survivors, seeds and split."""
        if not survivors:
            return params
        updates = {
            u: self.trainer.local_update(
                params,
                self.federation.clients[u],
                seed=training_seed(self.rng.fork(f"participant/{u}/secrets"), r),
            )
            for u in survivors
        }
        chosen = {u: weights[u] for u in survivors}
        return fedavg_step(params, weighted_sum(updates, chosen), sum(chosen.values()))
