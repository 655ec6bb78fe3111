"""Configuration of the pairwise-masking protocols, validated (and completed) on creation."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from secagg.errors import ConfigError
from secagg.graph import (
    Adversary,
    check_parameters,
    check_signature_quorum,
    find_parameters,
    security_threshold,
    signature_quorum,
)
from secagg.protocol import CommonConfig

__all__ = ["MaskingParameters", "SecAggPlusConfig"]


@dataclass(frozen=True, slots=True)
class MaskingParameters:
    """The resolved (t, k, min_survivors) of a validated config, all ints."""

    threshold: int
    num_neighbors: int
    min_survivors: int


def _choice(value: object, name: str) -> Adversary:
    try:
        return Adversary(value)
    except ValueError:
        options = ", ".join(a.value for a in Adversary)
        raise ConfigError(
            f"{name} must be one of {options}, got {value!r}", parameter=name
        ) from None


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True, slots=True)
class SecAggPlusConfig(CommonConfig):
    """:class:`~secagg.protocol.CommonConfig` plus the masking parameters.

    ``threshold`` and ``num_neighbors`` left as None are chosen by
    :func:`secagg.graph.find_parameters` for sigma = 40, eta = 20; given ones are checked for
    security (a :class:`ConfigError` names the first unsafe value).

    Parameters
    ----------
    threshold:
        t: Shamir threshold among a client's neighbours (Bonawitz's t).
    num_neighbors:
        k: each client's degree in the neighbour graph; n - 1 is the complete graph (SecAgg).
    dropout_rate:
        delta: the largest fraction of clients the parameters must survive dropping out.
    corrupted_fraction:
        gamma: the largest fraction of clients colluding with the server.
    adversary:
        What the server may do (:class:`~secagg.graph.Adversary`): ``"semi-honest"``;
        ``"semi-malicious"`` (the default: it may claim live clients dropped, showing every
        client the same survivor set); ``"malicious"`` (it may also show different survivor
        sets or rosters to different clients: needs ``consistency_check=True``). Without
        signatures no graph resists an equivocating server (``SPEC.md``, *Equivocation*).
    consistency_check:
        Run Bonawitz's ConsistencyCheck round: clients sign the survivor set and unmask only
        for one signed by :attr:`signature_quorum` clients, more than (n + floor(gamma n)) / 2,
        so at most one survivor set per round can be unmasked; the graph is then drawn over the
        directory of signing keys, not over the roster the server reports. Needs signing keys
        (a PKI). On chain the survivor set comes from the contract instead.
    min_survivors:
        Clients refuse to unmask (and the server aborts) when fewer than this many masked inputs
        are in the sum: the smallest set whose sum may be revealed. Default: t.
    """

    threshold: int | None = None
    num_neighbors: int | None = None
    dropout_rate: float = 0.1
    corrupted_fraction: float = 0.05
    adversary: str = Adversary.SEMI_MALICIOUS.value
    consistency_check: bool = False
    min_survivors: int | None = None

    COMPLETE_GRAPH: ClassVar[bool] = False

    def __post_init__(self) -> None:
        CommonConfig.__post_init__(self)
        n = self.num_clients
        if n < 3:
            raise ConfigError(
                f"pairwise masking needs num_clients >= 3, got {n}", parameter="num_clients"
            )
        adversary = _choice(self.adversary, "adversary")
        if not isinstance(self.consistency_check, bool):
            raise ConfigError(
                f"consistency_check must be a bool, got {self.consistency_check!r}",
                parameter="consistency_check",
            )
        if adversary is Adversary.MALICIOUS and not self.consistency_check:
            raise ConfigError(
                "against a malicious server (one that may show different survivor sets to "
                "different clients) the consistency check is required: set "
                "consistency_check=True and give every client a signing key and the directory",
                parameter="adversary",
            )
        k, t = self.num_neighbors, self.threshold
        for name, value in (("num_neighbors", k), ("threshold", t)):
            if value is not None and not _is_int(value):
                raise ConfigError(f"{name} must be an int, got {value!r}", parameter=name)
        if self.COMPLETE_GRAPH and k is not None and k != n - 1:
            raise ConfigError(
                f"secagg uses the complete graph (num_neighbors = {n - 1}); "
                "use secaggplus for a sparse graph",
                parameter="num_neighbors",
            )
        if k is None or self.COMPLETE_GRAPH:
            found = find_parameters(
                n,
                self.dropout_rate,
                self.corrupted_fraction,
                adversary,
                complete=self.COMPLETE_GRAPH,
            )
            k = found.num_neighbors
            t = found.threshold if t is None else t
        elif t is None:
            t = security_threshold(n, k, self.corrupted_fraction, adversary)
        check_parameters(n, k, t, self.dropout_rate, self.corrupted_fraction, adversary)
        m = t if self.min_survivors is None else self.min_survivors
        if not _is_int(m) or not t <= m <= n:
            raise ConfigError(
                f"min_survivors must be an int in [threshold={t}, num_clients={n}], got {m!r}",
                parameter="min_survivors",
            )
        if self.consistency_check:
            check_signature_quorum(n, self.dropout_rate, self.corrupted_fraction)
        object.__setattr__(self, "num_neighbors", k)
        object.__setattr__(self, "threshold", t)
        object.__setattr__(self, "min_survivors", m)

    @property
    def parameters(self) -> MaskingParameters:
        """t, k and min_survivors as chosen or checked in ``__post_init__``."""
        t, k, m = self.threshold, self.num_neighbors, self.min_survivors
        assert t is not None and k is not None and m is not None  # set by __post_init__
        return MaskingParameters(t, k, m)

    @property
    def signature_quorum(self) -> int:
        """q: signatures on U3 a client needs before it unmasks (consistency check only).

        floor((n + floor(gamma n)) / 2) + 1: at most one survivor set per round can be signed
        by q clients (:func:`secagg.graph.signature_quorum`).
        """
        return signature_quorum(self.num_clients, self.corrupted_fraction)

    @property
    def survivors_needed(self) -> int:
        """The fewest masked inputs a round can finish with: ``min_survivors``, and with the
        consistency check at least :attr:`signature_quorum` (the signers are survivors)."""
        m = self.parameters.min_survivors
        return max(m, self.signature_quorum) if self.consistency_check else m

    @property
    def adversary_model(self) -> Adversary:
        return Adversary(self.adversary)
