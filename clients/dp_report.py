"""The DP comparison's outputs: a markdown table and the accuracy-vs-epsilon plot."""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["DP_BEGIN", "DP_END", "plot", "table"]

DP_BEGIN = "<!-- dp:begin (written by make bench-dp) -->"
DP_END = "<!-- dp:end -->"

_LABELS = {
    "central": "central DP (Gaussian on the exact sum)",
    "ddg": "distributed discrete Gaussian via secaggplus",
    "dp-sgd": "local DP-SGD (Opacus, example-level)",
}


def _acc(x: float) -> str:
    return f"{100 * x:.2f}"


def table(results: dict[str, Any]) -> str:
    cfg, runs, cost = results["config"], results["runs"], results["cost"]
    top = max(cfg["epsilons"])
    by = {(r["mechanism"], r["epsilon"], r["bits"]): r for r in runs}
    none = by[("none", None, None)]["accuracy"]
    clipped = by[("clipped", None, None)]["accuracy"]
    lines = [
        f"MNIST, {cfg['clients']} clients (Dirichlet alpha = {cfg['alpha']}), all in every "
        f"round, {cfg['rounds']} rounds, model `{cfg['model']}` (d = {results['dim']:,}), "
        f"L2 clip c = {cfg['clip']}, delta = 1/{cfg['clients']}, one seed. "
        f"No DP: {_acc(none)} %; clipped, no noise: {_acc(clipped)} %. The DDG's noise is "
        f"calibrated for {results['contributors']} honest shares of {cfg['clients']} "
        f"(SecAgg+'s {100 * cfg['corrupted_fraction']:g} % corrupt clients know theirs), so "
        f"the sum carries {cfg['clients']}/{results['contributors']} of the central variance.",
        "",
        "| epsilon | " + " | ".join(_LABELS[m] for m in _LABELS) + " |",
        "|---:|" + "---:|" * len(_LABELS),
    ]
    for eps in cfg["epsilons"]:
        row = []
        for m in _LABELS:
            r = by[(m, eps, cfg["bits"] if m == "ddg" else None)]
            row.append(f"{_acc(r['accuracy'])} % (z = {r['noise_multiplier']:.3g})")
        lines.append(f"| {eps:g} | " + " | ".join(row) + " |")
    central = by[("central", top, None)]["accuracy"]
    lines += [
        "",
        f"Modulus bits b of the DDG at epsilon = {top:g} (the wire carries 32-bit ring words; "
        "b is what a packed upload would need per entry):",
        "",
        "| b | accuracy | vs central DP | vs no DP |",
        "|---:|---:|---:|---:|",
    ]
    for r in sorted(
        (r for r in runs if r["mechanism"] == "ddg" and r["epsilon"] == top),
        key=lambda r: r["bits"],
    ):
        lines.append(
            f"| {r['bits']} | {_acc(r['accuracy'])} % | {100 * (r['accuracy'] - central):+.2f} "
            f"| {100 * (r['accuracy'] - none):+.2f} |"
        )
    within = sorted(
        r["bits"]
        for r in runs
        if r["mechanism"] == "ddg" and r["epsilon"] == top and r["accuracy"] >= central - 0.01
    )
    lines += [
        "",
        f"Smallest b within 1 point of central DP at epsilon = {top:g}: "
        + (f"**b = {within[0]}**." if within else "none of the b tried."),
    ]
    lines += [
        "",
        "One client's DP encoding at d = {:,} (ms): rotation {:.2f}, rounding {:.2f}, "
        "sampling {:.2f}; total {:.2f} = {:.1f}x its masking work in the same secaggplus round "
        "({:.2f} ms), {:.1f}x the plain quantizer ({:.2f} ms).".format(
            results["dim"],
            1e3 * cost["rotation"],
            1e3 * cost["rounding"],
            1e3 * cost["sampling"],
            1e3 * cost["dp_encoding"],
            cost["dp_encoding"] / cost["masking"],
            1e3 * cost["masking"],
            cost["dp_encoding"] / cost["quantize"],
            1e3 * cost["quantize"],
        ),
    ]
    return "\n".join(lines) + "\n"


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cfg, runs = results["config"], results["runs"]
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for m, label in _LABELS.items():
        pts = sorted(
            (r["epsilon"], r["accuracy"])
            for r in runs
            if r["mechanism"] == m and (m != "ddg" or r["bits"] == cfg["bits"])
        )
        ax.plot([p[0] for p in pts], [100 * p[1] for p in pts], marker="o", label=label)
    for m, style in (("none", "--"), ("clipped", ":")):
        acc = next(r["accuracy"] for r in runs if r["mechanism"] == m)
        ax.axhline(100 * acc, linestyle=style, color="gray", label=f"{m} (no noise)")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("epsilon (delta = 1/n)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(f"MNIST, {cfg['clients']} clients, {cfg['rounds']} rounds")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
