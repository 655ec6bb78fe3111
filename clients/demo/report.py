"""The demo's outputs: a table per round (rich), ``results.json`` and PNG plots (matplotlib)."""

from __future__ import annotations

import json
from pathlib import Path

from rich.table import Table

from .run import DemoResult

__all__ = ["PHASES", "phase_table", "round_table", "write_plots", "write_results"]

PHASES = ("share_keys", "commit", "reveal", "unmask", "finalize")


def _num(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def round_table(result: DemoResult) -> Table:
    """One row per round: outcome, accuracy (secure and plain FedAvg), time, bytes, gas."""
    protocol = result.config["protocol"]
    table = Table(title=f"{protocol}: {result.config['clients']} clients, task {result.task_id}")
    dp = any(r.epsilon is not None for r in result.rounds)
    sgd = any(r.example_epsilon is not None for r in result.rounds)
    names = ("round", "outcome", "|U|", "acc", "plain", *(("eps",) if dp else ()))
    names += ("ex-eps",) if sgd else ()
    for name in (*names, "secs", "B/client", "gas/client", "ok"):
        table.add_column(name, justify="right")
    for r in result.rounds:
        table.add_row(
            str(r.round),
            r.outcome,
            str(len(r.survivors)),
            _num(r.accuracy, ".3f"),
            _num(r.plain_accuracy, ".3f"),
            *((_num(r.epsilon, ".2f"),) if dp else ()),
            *((_num(r.example_epsilon, ".2f"),) if sgd else ()),
            f"{r.seconds:.2f}",
            f"{r.bytes_per_client:,.0f}",
            f"{r.gas_per_participant:,.0f}",
            {True: "yes", False: "NO", None: "-"}[r.verified],
        )
    table.caption = "acc: test accuracy; plain: plain FedAvg on the same survivors; ok: verified"
    if dp:
        table.caption += "; eps: the task's epsilon after the round (delta = 1e-5)"
    if sgd:
        table.caption += "; ex-eps: DP-SGD's example-level epsilon, largest participant"
    return table


def phase_table(result: DemoResult) -> Table:
    """Wall seconds of each chain phase per round (all agents' work and the chain's)."""
    table = Table(title="seconds per phase")
    table.add_column("round", justify="right")
    phases = [p for p in PHASES if any(p in r.phase_seconds for r in result.rounds)]
    for phase in phases:
        table.add_column(phase, justify="right")
    table.add_column("aggregator", justify="right")
    for r in result.rounds:
        table.add_row(
            str(r.round),
            *(_num(r.phase_seconds.get(p), ".2f") for p in phases),
            f"{r.aggregator_seconds:.2f}",
        )
    return table


def write_results(result: DemoResult, out: Path) -> Path:
    """``out/results.json``: the config, every round's report and the settlement."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / "results.json"
    path.write_text(json.dumps(result.as_dict(), indent=2, sort_keys=True) + "\n")
    return path


def write_plots(result: DemoResult, out: Path) -> list[Path]:
    """``accuracy.png`` (secure vs plain FedAvg per round) and ``phases.png`` (seconds and
    bytes per client in each phase, per round)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    rounds = [0, *(r.round for r in result.rounds)]
    protocol = result.config["protocol"]

    def series(values: list[float | None]) -> list[float]:
        return [result.initial_accuracy, *(float("nan") if v is None else v for v in values)]

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(rounds, series([r.accuracy for r in result.rounds]), "o-", label=f"{protocol} on chain")
    ax.plot(rounds, series([r.plain_accuracy for r in result.rounds]), "x--", label="plain FedAvg")
    ax.set_xlabel("round")
    ax.set_ylabel("test accuracy")
    ax.set_title("digits: secure vs plain FedAvg (same seed, split and survivors)")
    ax.legend()
    fig.tight_layout()
    accuracy = out / "accuracy.png"
    fig.savefig(accuracy, dpi=120)
    plt.close(fig)

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(7, 6), sharex=True)
    xs = [r.round for r in result.rounds]
    below_s = [0.0] * len(xs)
    below_b = [0.0] * len(xs)
    for phase in PHASES:
        secs = [r.phase_seconds.get(phase, 0.0) for r in result.rounds]
        size = [r.phase_bytes_per_client.get(phase, 0.0) for r in result.rounds]
        if any(secs):
            top.bar(xs, secs, bottom=below_s, label=phase)
            below_s = [a + b for a, b in zip(below_s, secs, strict=True)]
        if any(size):
            bottom.bar(xs, size, bottom=below_b, label=phase)
            below_b = [a + b for a, b in zip(below_b, size, strict=True)]
    top.set_ylabel("seconds (wall)")
    top.set_title(f"{protocol}: time and bytes per client, by phase")
    top.legend(fontsize="small")
    bottom.set_ylabel("bytes per client")
    bottom.set_xlabel("round")
    bottom.legend(fontsize="small")
    fig.tight_layout()
    phases = out / "phases.png"
    fig.savefig(phases, dpi=120)
    plt.close(fig)
    return [accuracy, phases]
