"""The ``secagg`` command line.

``secagg demo`` will run federated training coordinated on chain (issue #7). Until that lands
it says so and runs what exists today: one in-process round of a secure-sum protocol
(``secagg.simulate``) over per-client statistics of scikit-learn's digits (shipped offline),
checking the decoded sum against the exact float sum.

``secagg bench`` (issue #8) is not built yet and says so; ``make bench`` runs the primitive
benchmarks that exist.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import numpy as np

NOT_BUILT = 2


def _client_updates(num_clients: int, seed: int) -> dict[int, np.ndarray]:
    """Per-client mean image of a non-IID shard of digits (each client sees 3 classes)."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images, labels = digits.data / 16.0, digits.target
    rng = np.random.default_rng(seed)  # data split only; nothing secret comes from it
    updates = {}
    for cid in range(num_clients):
        classes = rng.choice(10, size=3, replace=False)
        mask = np.isin(labels, classes)
        idx = rng.choice(np.flatnonzero(mask), size=min(100, int(mask.sum())), replace=False)
        updates[cid] = images[idx].mean(axis=0) - images.mean(axis=0)
    return updates


def _demo(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    import secagg.protocols as protocols
    from secagg import AbortError, simulate

    console = Console()
    console.print(
        "[bold yellow]Not built yet:[/] the full demo (PyTorch training, on-chain rounds, "
        "IPFS storage) is issue #7.\nRunning one in-process secure-sum round with the "
        "protocols that exist today.\n"
    )
    updates = _client_updates(args.clients, args.seed)
    proto = protocols.get(args.protocol, num_clients=args.clients, clip=1.0, quant_bits=20)
    rng = np.random.default_rng(args.seed + 1)
    dropouts = {
        int(cid): proto.phases[int(rng.integers(len(proto.phases)))]
        for cid in rng.choice(args.clients, size=int(args.dropout * args.clients), replace=False)
    }
    try:
        result = simulate(proto, updates, dropouts=dropouts, seed=args.seed)
    except AbortError as exc:
        console.print(f"[red]{exc}[/]")
        return 1
    exact = sum(np.clip(updates[c], -1.0, 1.0) for c in result.survivors)
    err = float(np.max(np.abs(result.sum - exact)))
    bound = proto.config.quantization.sum_error_bound(len(result.survivors))

    stats = result.stats
    table = Table(title=f"one round of '{args.protocol}' (in-process)")
    table.add_column("quantity")
    table.add_column("value", justify="right")
    for name, value in [
        ("clients", str(args.clients)),
        ("survivors", str(len(result.survivors))),
        ("d (entries per update)", str(len(exact))),
        ("max |decoded sum - exact sum|", f"{err:.2e}"),
        ("quantization error bound", f"{bound:.2e}"),
        ("bytes sent per client", f"{result.bytes_per_client():.0f}"),
        ("client seconds (all clients)", f"{sum(s.seconds for s in stats['client'].values()):.4f}"),
        ("server seconds", f"{sum(s.seconds for s in stats['server'].values()):.4f}"),
    ]:
        table.add_row(name, value)
    console.print(table)
    if result.dropped:
        console.print(f"dropped: {result.dropped}")
    if err > bound:
        console.print("[red]decoded sum outside the quantization error bound[/]")
        return 1
    return 0


def _bench(args: argparse.Namespace) -> int:
    print(
        "secagg bench: not built yet (issue #8). `make bench` runs the benchmarks that exist "
        "(keystream, Shamir).",
        file=sys.stderr,
    )
    return NOT_BUILT


def build_parser() -> argparse.ArgumentParser:
    import secagg.protocols as protocols

    parser = argparse.ArgumentParser(prog="secagg", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="run the demo (today: one in-process secure-sum round)")
    demo.add_argument("--protocol", choices=protocols.names(), default="plain")
    demo.add_argument("--clients", type=int, default=10)
    demo.add_argument("--dropout", type=float, default=0.0, help="fraction that vanish")
    demo.add_argument("--seed", type=int, default=0)
    demo.set_defaults(func=_demo)
    bench = sub.add_parser("bench", help="encryption-overhead benchmarks (not built yet)")
    bench.set_defaults(func=_bench)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    code: int = args.func(args)
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
