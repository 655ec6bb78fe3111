"""SecAgg+ neighbour graphs and the parameter finder that makes them safe.

Bell et al. (CCS'20) replace SecAgg's complete graph by a sparse graph G of degree k: client u
masks only with its neighbours N(u) and Shamir-shares its secrets only among them, with
threshold t <= k. Costs fall from O(n) to O(k) = O(log n) per client. Two bad events must stay
unlikely:

* **security** (2^-sigma, sigma = 40): the server plus the corrupted clients learn more than
  the sum. This happens when the honest survivors' subgraph is disconnected (a component's sum
  is revealed), or when the adversary holds t shares of an honest client's secrets;
* **correctness** (2^-eta, eta = 20): some survivor has fewer than t live neighbours, so its
  self mask cannot be removed and the round aborts.

The graph here is a *random Harary graph*: the roster is permuted by a permutation derived
from a public seed (the session id), and each client is joined to the k/2 clients on either
side of it on that ring. With k >= n - 1 it is the complete graph, i.e. SecAgg.

:func:`find_parameters` follows the analysis used by Google's fcp
(``graph_parameter_finder.cc``): the smallest even k for which a union bound over "two gaps of
k/2 consecutive bad clients" keeps the disconnection probability below 2^-(sigma+1), and a
threshold t between the adversary's share count (a hypergeometric tail below
2^-(sigma+1)/n) and the survivors' share count (a tail below 2^-eta/n). When no such pair
exists it falls back to the complete graph, and raises :class:`~secagg.errors.ConfigError`
when even that is not safe.
"""

from __future__ import annotations

import enum
import functools
import math
from collections.abc import Iterable
from dataclasses import dataclass

from scipy.stats import hypergeom

from secagg.errors import ConfigError, RemoteProtocolError
from secagg.primitives.kdf import Label, derive_key
from secagg.randomness import SeededRandom, shuffled

__all__ = [
    "CORRECTNESS_BITS",
    "SECURITY_BITS",
    "Adversary",
    "GraphParameters",
    "NeighbourGraph",
    "check_parameters",
    "check_signature_quorum",
    "correctness_threshold",
    "find_parameters",
    "graph_seed",
    "security_threshold",
    "signature_quorum",
    "stays_connected",
]

SECURITY_BITS = 40
"""sigma: the server learns more than the sum with probability < 2^-sigma."""
CORRECTNESS_BITS = 20
"""eta: a round with at most the stated dropouts aborts with probability < 2^-eta."""
_EPS = 1e-14  # as in fcp: rounding of rate * n never errs on the insecure side


class Adversary(enum.Enum):
    """Whom the threshold must defeat (fcp's AdversaryClass, plus equivocation).

    The three differ in what the server may say to the clients; all may collude with up to
    floor(gamma n) corrupted clients and drop anyone.
    """

    SEMI_HONEST = "semi-honest"
    """The server follows the protocol but is curious."""
    SEMI_MALICIOUS = "semi-malicious"
    """The server may claim that live clients dropped out, to ask for both kinds of shares of
    one client, but it shows every client the *same* survivor set and roster. Needs
    t > (k + corrupted neighbours) / 2 so that honest neighbours never hand out t shares of
    both kinds. The default. It does not defeat a server that shows different survivor sets
    to different clients, on any graph (``tests/test_masking_attacks.py``): use
    :attr:`MALICIOUS`."""
    MALICIOUS = "malicious"
    """The server may also equivocate: show different survivor sets or rosters to different
    clients. Needs the consistency check (signatures from a PKI): a client unmasks only for a
    survivor set that more than (n + floor(gamma n)) / 2 clients signed
    (:func:`signature_quorum`, fcp's full-graph rule), and the graph is drawn over the fixed
    directory of signing keys. Thresholds are those of :attr:`SEMI_MALICIOUS`."""

    @property
    def lies(self) -> bool:
        """Whether the server may lie about who dropped out (t must exceed (k + a) / 2)."""
        return self is not Adversary.SEMI_HONEST


@dataclass(frozen=True, slots=True)
class GraphParameters:
    """A safe (k, t) for n clients.

    Attributes
    ----------
    num_clients:
        n.
    num_neighbors:
        k, each client's degree (n - 1: the complete graph).
    threshold:
        t, the Shamir threshold among a client's k neighbours.
    """

    num_clients: int
    num_neighbors: int
    threshold: int


def _check_rates(dropout_rate: float, corrupted_fraction: float, adversary: Adversary) -> None:
    for name, value in (("dropout_rate", dropout_rate), ("corrupted_fraction", corrupted_fraction)):
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < 1:
            raise ConfigError(f"{name} must be in [0, 1), got {value!r}", parameter=name)
    weight = 2 if adversary.lies else 1
    if corrupted_fraction + weight * dropout_rate > 0.9:
        rule = "corrupted_fraction + 2 dropout_rate" if weight == 2 else "corrupted + dropout"
        raise ConfigError(
            f"{rule} must be <= 0.9 against a {adversary.value} server, got "
            f"{corrupted_fraction} and {dropout_rate}",
            parameter="dropout_rate",
        )


def corrupted_clients(n: int, corrupted_fraction: float) -> int:
    """floor(gamma n): the corrupted clients the parameters are sized for (gamma n is rounded
    up when float error puts it a hair below an integer)."""
    return math.floor((corrupted_fraction + _EPS) * n)


def _counts(n: int, dropout_rate: float, corrupted_fraction: float) -> tuple[int, int]:
    """floor(gamma n) corrupted clients; ceil(delta n) dropouts (so that a rate > 0 always
    budgets at least one dropout: 10% of 8 clients means surviving one, not none). Both round
    towards the safe side."""
    corrupted = corrupted_clients(n, corrupted_fraction)
    dropped = math.ceil((dropout_rate - _EPS) * n)
    return corrupted, dropped


def _log_prob_disconnected(n: int, k: int, bad: int) -> float:
    """Union bound on Pr[the random Harary graph minus ``bad`` clients is disconnected].

    Disconnecting it takes two disjoint runs of k/2 consecutive removed clients on the ring;
    there are n (n - k - 1) / 2 places for the pair and each is all-bad with probability
    bad! (n-k)! / (n! (bad-k)!).
    """
    if k > bad:
        return -math.inf
    return (
        math.log(n)
        + math.log(n - k - 1)
        - math.log(2)
        + math.lgamma(bad + 1)
        + math.lgamma(n - k + 1)
        - math.lgamma(n + 1)
        - math.lgamma(bad - k + 1)
    )


def _security_floor(k: int, adversarial: int, adversary: Adversary) -> int:
    """The least t that keeps an honest client's secrets from the adversary."""
    if adversary.lies:
        # honest neighbours reveal one kind of share each: the adversary gets t of both kinds
        # only if 2 (t - adversarial) <= k - adversarial. (Equivocation is the quorum's job:
        # :func:`signature_quorum`.)
        return (k + adversarial) // 2 + 1
    return adversarial + 1


def signature_quorum(n: int, corrupted_fraction: float) -> int:
    """The signatures on a survivor set a client needs before it unmasks (consistency check).

    A strict majority of the n clients plus the corrupt budget a = floor(gamma n):
    q = floor((n + a) / 2) + 1. Two different survivor sets each signed by q distinct clients
    share 2q - n > a signers, so at least one honest client would have signed both; an honest
    client signs once per round, so at most one survivor set per round can reach q.
    """
    corrupted = _counts(n, 0.0, corrupted_fraction)[0]
    return (n + corrupted) // 2 + 1


def check_signature_quorum(n: int, dropout_rate: float, corrupted_fraction: float) -> None:
    """Raise ConfigError when the quorum (:func:`signature_quorum`) exceeds the clients
    expected to survive, n - ceil(delta n): the consistency check would then always fail."""
    q = signature_quorum(n, corrupted_fraction)
    expected = n - _counts(n, dropout_rate, 0.0)[1]
    if q > expected:
        raise ConfigError(
            f"the consistency check needs {q} signatures (more than (n + floor(gamma n)) / 2), "
            f"but only {expected} of {n} clients are expected to survive "
            f"dropout_rate={dropout_rate}",
            parameter="dropout_rate",
        )


def security_threshold(
    n: int,
    k: int,
    corrupted_fraction: float,
    adversary: Adversary,
    security_bits: int = SECURITY_BITS,
) -> int:
    """The least t (>= 2) such that, except with probability 2^-(sigma+1) over the graph, no
    client has so many corrupted neighbours that the adversary can rebuild its secrets."""
    corrupted = _counts(n, 0.0, corrupted_fraction)[0]
    eps = 2.0 ** -(security_bits + 1) / n
    adv = hypergeom(n, corrupted, k)  # corrupted neighbours of one client
    a_star = next(a for a in range(k + 1) if adv.sf(a) <= eps)
    return max(_security_floor(k, a_star, adversary), 2)


def correctness_threshold(
    n: int, k: int, dropout_rate: float, correctness_bits: int = CORRECTNESS_BITS
) -> int:
    """The greatest t such that some client keeps fewer than t live neighbours with
    probability at most 2^-eta (0 when no t qualifies)."""
    dropped = _counts(n, dropout_rate, 0.0)[1]
    eps = 2.0**-correctness_bits / n
    live = hypergeom(n, n - dropped, k)
    return max((t for t in range(1, k + 1) if live.cdf(t - 1) <= eps), default=0)


def stays_connected(
    n: int,
    k: int,
    dropout_rate: float,
    corrupted_fraction: float,
    security_bits: int = SECURITY_BITS,
) -> bool:
    """Whether the honest survivors of a random Harary graph of degree k stay connected except
    with probability 2^-(sigma+1) (the complete graph always does)."""
    if k >= n - 1:
        return True
    corrupted, dropped = _counts(n, dropout_rate, corrupted_fraction)
    bound = _log_prob_disconnected(n, k, corrupted + dropped)
    return bound < -(security_bits + 1) * math.log(2)


def check_parameters(
    n: int,
    k: int,
    t: int,
    dropout_rate: float,
    corrupted_fraction: float,
    adversary: Adversary = Adversary.SEMI_MALICIOUS,
) -> None:
    """Raise ConfigError unless an explicitly chosen (k, t) is secure (sigma = 40).

    Correctness (how many dropouts the round survives) is the caller's trade-off and is not
    enforced here; security is.
    """
    _check_rates(dropout_rate, corrupted_fraction, adversary)
    if not (k == n - 1 or (k % 2 == 0 and 2 <= k <= n - 2)):
        raise ConfigError(
            f"num_neighbors must be even in [2, {n - 2}] or {n - 1} (complete), got {k}",
            parameter="num_neighbors",
        )
    if not stays_connected(n, k, dropout_rate, corrupted_fraction):
        raise ConfigError(
            f"num_neighbors={k} is too small for {n} clients: the honest survivors' graph "
            f"may disconnect (probability above 2^-{SECURITY_BITS}); let the finder choose k",
            parameter="num_neighbors",
        )
    floor = security_threshold(n, k, corrupted_fraction, adversary)
    if not floor <= t <= k:
        raise ConfigError(
            f"threshold must be in [{floor}, {k}] for k={k} against a {adversary.value} "
            f"server with corrupted_fraction={corrupted_fraction}, got {t}",
            parameter="threshold",
        )


def find_parameters(
    n: int,
    dropout_rate: float = 0.1,
    corrupted_fraction: float = 0.0,
    adversary: Adversary = Adversary.SEMI_MALICIOUS,
    *,
    complete: bool = False,
) -> GraphParameters:
    """The sparsest safe graph for ``n`` clients (sigma = 40, eta = 20).

    Parameters
    ----------
    n:
        Number of clients (>= 3).
    dropout_rate:
        delta: the largest fraction of clients expected to drop out of a round.
    corrupted_fraction:
        gamma: the largest fraction of clients colluding with the server.
    adversary:
        The server's power (:class:`Adversary`).
    complete:
        Only consider the complete graph (SecAgg).

    Returns
    -------
    GraphParameters
        The smallest even k and the least safe t for it; the complete graph when no sparse
        graph is safe for this n.

    Raises
    ------
    ConfigError
        Not even the complete graph is both secure and correct for these rates.
    """
    _check_rates(dropout_rate, corrupted_fraction, adversary)
    if isinstance(n, bool) or not isinstance(n, int) or n < 3:
        raise ConfigError(f"masking needs num_clients >= 3, got {n!r}", parameter="num_clients")
    degrees = [n - 1] if complete else [*range(2, n - 2, 2), n - 1]
    for k in degrees:
        if not stays_connected(n, k, dropout_rate, corrupted_fraction):
            continue
        t = security_threshold(n, k, corrupted_fraction, adversary)
        if t <= correctness_threshold(n, k, dropout_rate):
            return GraphParameters(n, k, t)
    raise ConfigError(
        f"no safe (num_neighbors, threshold) for {n} clients with dropout_rate={dropout_rate}, "
        f"corrupted_fraction={corrupted_fraction} against a {adversary.value} server: even the "
        "complete graph needs a threshold above the clients expected to survive; lower the "
        "rates or add clients",
        parameter="dropout_rate",
    )


def graph_seed(session: bytes, round: int) -> bytes:
    """The public seed of a round's graph: HKDF(session id, NEIGHBOUR_GRAPH, session, round)."""
    return derive_key(session, Label.NEIGHBOUR_GRAPH, session=session, round=round)


class NeighbourGraph:
    """The random Harary graph H(k, m) on a roster of m client ids.

    Parameters
    ----------
    roster:
        The client ids taking part (sorted here; order does not matter).
    degree:
        k: even, or >= m - 1 for the complete graph.
    seed:
        32 public bytes (:func:`graph_seed`): every party derives the same graph.
    """

    def __init__(self, roster: Iterable[int], degree: int, seed: bytes) -> None:
        ids = sorted(set(roster))
        m = len(ids)
        self.roster: tuple[int, ...] = tuple(ids)
        self.complete = degree >= m - 1
        if not self.complete and degree % 2:
            raise ConfigError(
                f"a Harary graph needs an even degree, got {degree}", parameter="num_neighbors"
            )
        self.degree = m - 1 if self.complete else degree
        if self.complete:
            self._ring: list[int] = ids
            self._position: dict[int, int] = {u: i for i, u in enumerate(ids)}
            return
        ring = shuffled(ids, SeededRandom(seed))
        self._ring = ring
        self._position = {u: i for i, u in enumerate(ring)}

    @classmethod
    def shared(cls, roster: Iterable[int], degree: int, seed: bytes) -> NeighbourGraph:
        """The graph on ``roster``, built once per (roster, degree, seed) in this process:
        every client of a simulated round (and the server) asks for the same one. Graphs are
        never changed after construction, so sharing one is safe."""
        return _shared_graph(tuple(sorted(set(roster))), degree, seed)

    def __contains__(self, u: object) -> bool:
        return u in self._position

    def neighbours(self, u: int) -> frozenset[int]:
        """N(u): the k clients u masks with and shares its secrets among (never u itself)."""
        try:
            pos = self._position[u]
        except KeyError:
            raise RemoteProtocolError(f"client {u} is not on the roster") from None
        if self.complete:
            return frozenset(v for v in self._ring if v != u)
        m, half = len(self._ring), self.degree // 2
        return frozenset(self._ring[(pos + j) % m] for j in range(-half, half + 1) if j)

    def __repr__(self) -> str:
        kind = "complete" if self.complete else f"harary k={self.degree}"
        return f"<NeighbourGraph {kind} on {len(self.roster)} clients>"


@functools.lru_cache(maxsize=16)
def _shared_graph(roster: tuple[int, ...], degree: int, seed: bytes) -> NeighbourGraph:
    return NeighbourGraph(roster, degree, seed)
