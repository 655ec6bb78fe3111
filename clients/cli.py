"""The ``secagg`` command line.

``secagg demo`` trains the digits model with federated averaging: every client trains with
PyTorch, encodes its update with the chosen protocol, and coordinates through the contracts
(embedded chain by default) and the content-addressed store (in memory by default). It prints
a table per round, verifies every posted model from public data, and writes
``results.json`` and PNG plots.

``secagg verify`` recomputes one round's model from the chain and the store and checks it
against the sha256 the aggregator posted.

``secagg bench`` runs the benchmark grid (every protocol over d, n and dropout, with
references measured in the same run) and writes JSON, markdown and plots; ``make bench``
runs the same grid under pytest-benchmark together with the primitive benchmarks.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

FAILED = 1


def _demo(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

    from secagg.chain import Phase
    from secagg.errors import SecAggError

    from .demo.report import phase_table, round_table, write_plots, write_results
    from .demo.run import Demo, DemoConfig, round_phases

    console = Console()
    try:
        config = DemoConfig(
            protocol=args.protocol,
            clients=args.clients,
            rounds=args.rounds,
            dropout=args.dropout,
            seed=args.seed,
            chain=args.chain,
            store=args.store,
            model=args.model,
            dp_noise=args.dp_noise,
            dp_clip=args.dp_clip,
            dp_bits=args.dp_bits,
            dp_budget=args.dp_budget,
            dp_sgd_noise=args.dp_sgd_noise,
            dp_sgd_clip=args.dp_sgd_clip,
        )
    except SecAggError as exc:
        console.print(f"[red]{exc}[/]", soft_wrap=True)
        return FAILED
    progress = Progress(
        TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[phase]}"),
        TimeElapsedColumn(), console=console,
    )  # fmt: skip
    bars: dict[int, TaskID] = {}

    def on_phase(round: int, phase: Phase) -> None:
        if round == 0 or phase is Phase.REGISTRATION:
            return
        for r, bar in bars.items():
            if r != round or phase is Phase.ENDED:
                progress.update(bar, completed=progress.tasks[bar].total, phase="done")
        if phase is Phase.ENDED:
            return
        if round not in bars:
            steps = len(round_phases(demo.proto))
            bars[round] = progress.add_task(f"round {round}", total=steps, phase="")
        phases = round_phases(demo.proto)
        done = phases.index(phase) if phase in phases else 0
        progress.update(bars[round], completed=done, phase=phase.name.lower())

    try:
        with progress, Demo(config, on_phase=on_phase) as demo:
            result = demo.run()
    except SecAggError as exc:
        console.print(f"[red]demo failed: {type(exc).__name__}: {exc}[/]", soft_wrap=True)
        return FAILED
    console.print(round_table(result))
    console.print(phase_table(result))
    for r in result.rounds:
        for note in r.notes:
            console.print(f"  round {r.round}: {note}")
    out = Path(args.out)
    paths = [write_results(result, out), *write_plots(result, out)]
    gap = 100 * (result.plain_final_accuracy - result.final_accuracy)
    secure, plain = result.final_accuracy, result.plain_final_accuracy
    console.print(
        f"final accuracy {secure:.3f} (plain FedAvg {plain:.3f}, gap {gap:+.2f} points); "
        f"{result.total_seconds:.1f} s; wrote " + ", ".join(str(p) for p in paths)
    )
    unverified = [r.round for r in result.rounds if r.verified is False]
    if unverified:
        console.print(f"[red]rounds {unverified} failed verification[/]")
        return FAILED
    return 0


def _verify(args: argparse.Namespace) -> int:
    from rich.console import Console

    from secagg.errors import SecAggError

    from .agents.verify import verify_round
    from .commands import connect_store, open_contracts, require_task

    console = Console(soft_wrap=True)  # one line per message, whatever the terminal
    try:
        store = connect_store(args.store)
        contracts = open_contracts(args)  # an http(s) node holding the deployment
        require_task(contracts, args.task)
        model = verify_round(contracts, store, args.task, args.round)
    except SecAggError as exc:
        console.print(f"[red]{type(exc).__name__}: {exc}[/]")
        return FAILED
    console.print(
        f"task {args.task} round {args.round}: verified; survivors {list(model.survivors)}, "
        f"model sha256 {model.sha256().hex()}"
    )
    return 0


def _bench(args: argparse.Namespace) -> int:
    import torch
    from rich.console import Console
    from rich.progress import track

    from secagg.errors import SecAggError

    from .bench.grid import estimate_seconds, finish_grid, grid, run_case
    from .bench.report import write_grid_outputs

    console = Console()
    cuda = torch.cuda.is_available()
    try:
        cases = grid(args.grid, cuda=cuda)
    except SecAggError as exc:
        console.print(f"[red]{exc}[/]")
        return FAILED
    run = [c for c in cases if estimate_seconds(c) <= args.cap]
    skipped = [c for c in cases if estimate_seconds(c) > args.cap]
    rows = [run_case(c) for c in track(run, description=f"grid {args.grid}", console=console)]
    done = finish_grid(args.grid, cuda, rows, run, skipped)
    paths = write_grid_outputs(done, out=Path(args.out))
    console.print(f"{len(rows)} cases, {len(skipped)} skipped; wrote " + ", ".join(map(str, paths)))
    return 0


def build_parser() -> argparse.ArgumentParser:
    import secagg.protocols as protocols

    from .commands import CHAIN_ENV, DEPLOYMENT_ENV, STORE_ENV, add_role_commands

    parser = argparse.ArgumentParser(prog="secagg", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="federated training coordinated on chain")
    demo.add_argument("--protocol", choices=protocols.names(), default="secaggplus")
    demo.add_argument("--clients", type=int, default=10)
    demo.add_argument("--rounds", type=int, default=5)
    demo.add_argument(
        "--dropout", type=float, default=0.0, help="fraction of clients that vanish each round"
    )
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--chain", default="embedded", help="embedded | anvil | http(s)://URL")
    demo.add_argument("--store", default="memory", help="memory | dir:PATH | ipfs | ipfs:URL")
    demo.add_argument("--model", choices=["mlp", "cnn"], default="mlp")
    demo.add_argument("--out", default="results", help="folder for results.json and plots")
    dp = demo.add_argument_group("distributed differential privacy (secagg.dp)")
    dp.add_argument(
        "--dp-noise", type=float, default=0.0, help="noise multiplier z; 0 (default): no DP"
    )
    dp.add_argument("--dp-clip", type=float, default=1.0, help="L2 clip of each update")
    dp.add_argument("--dp-bits", type=int, default=20, help="modulus bits b of the noisy sum")
    dp.add_argument(
        "--dp-budget", type=float, default=None, help="epsilon past which participants stop"
    )
    dp.add_argument(
        "--dp-sgd-noise", type=float, default=0.0, help="Opacus DP-SGD noise; 0: plain SGD"
    )
    dp.add_argument("--dp-sgd-clip", type=float, default=1.0, help="DP-SGD per-example clip")
    demo.set_defaults(func=_demo)
    verify = sub.add_parser("verify", help="recompute a round's model from public data")
    verify.add_argument("--task", type=int, required=True)
    verify.add_argument("--round", type=int, required=True)
    verify.add_argument(
        "--chain", default=os.environ.get(CHAIN_ENV), help="the node's http(s)://URL"
    )
    verify.add_argument("--store", default=os.environ.get(STORE_ENV), help="ipfs:URL | dir:PATH")
    verify.add_argument(
        "--deployment",
        default=os.environ.get(DEPLOYMENT_ENV),
        help="JSON with the contract addresses (deployment.json, or a demo's results.json)",
    )
    verify.set_defaults(func=_verify)
    bench = sub.add_parser("bench", help="the benchmark grid: every protocol over d, n, dropout")
    bench.add_argument("--grid", choices=["quick", "full"], default="quick")
    bench.add_argument(
        "--cap", type=float, default=120.0, help="skip cases estimated to take longer (seconds)"
    )
    bench.add_argument("--out", default=".benchmarks", help="folder for JSON, markdown, plots")
    bench.set_defaults(func=_bench)
    add_role_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    code: int = args.func(args)
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
