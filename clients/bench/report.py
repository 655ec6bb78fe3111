"""The benchmark grid's outputs: JSON, a markdown table with ratios, and PNG plots."""

from __future__ import annotations

import json
import platform
from pathlib import Path
from typing import Any

from .grid import GridRun, estimate_seconds

__all__ = ["GRID_BEGIN", "GRID_END", "markdown", "write_grid_outputs"]

GRID_BEGIN = "<!-- grid:begin (written by make bench) -->"
GRID_END = "<!-- grid:end -->"


def _ratio(num: float, den: float | None) -> str:
    if den is None or not den > 0:
        return "—"
    return f"{num / den:,.1f}x"


def _size(n: float) -> str:
    for unit, scale in (("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.2f} {unit}"
    return f"{n:.0f} B"


def _secs(s: float) -> str:
    return f"{s:.2f} s" if s >= 1 else f"{s * 1e3:.2f} ms"


def _d(d: int) -> str:
    exponent = len(str(d)) - 1
    return f"10^{exponent}" if d == 10**exponent else str(d)


def markdown(grid: GridRun) -> str:
    """The grid as markdown: one table row per case, every figure with its reference ratio."""
    rows, refs, kind = grid.rows, grid.references, grid.kind
    # secaggplus rows compare with Flower at the same k (it grows with the dropout rate)
    plain = {
        (r["n"], r["d"], r["dropout"], r["device"]): r for r in rows if r["protocol"] == "plain"
    }
    lines = [
        f"Grid `{kind}` on {platform.machine()} / Python {platform.python_version()}; one round "
        "per case (`secagg.simulate`), inputs uniform in [-1, 1], clip 1, q = 16, b = 32.",
        "",
        "Reading the ratios: *client/keystream* is a client's seconds over the raw ChaCha20 "
        "keystream of d uint32 entries (how many mask-sized PRG fills it costs); *server/add* "
        "is the server's seconds over one numpy uint32 add of d entries per surviving input "
        "(memory bandwidth); */plain* is the case's seconds over the `plain` protocol's same "
        "case; *vs ref* is, for ckks, ours / TenSEAL alone encrypting the same d (a cost: "
        "> 1 means slower than TenSEAL), and for secaggplus Flower 1.42's full SecAgg+ round / "
        "ours, each the compute of all clients plus the server at the same n, d, k, t and "
        "dropouts, measured in this run (a speed: > 1 means we are faster; table below). "
        "Every case and every Flower round is one round after an untimed warm-up round; "
        "keystream, add and TenSEAL are the median of 3 calls after an untimed one.",
        "",
        "| protocol | n | d | drop | client s | client/keystream | server s | server/add "
        "| /plain | vs ref | bytes/client | expansion | peak MiB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        d = r["d"]
        if r.get("aborted"):
            lines.append(
                f"| {r['protocol']} | {r['n']} | {_d(d)} | {int(100 * r['dropout'])}% "
                f"| aborted: {r['aborted']} ({_secs(r['seconds'])}) |  |  |  |  |  |  |  |  |"
            )
            continue
        base = plain.get((r["n"], d, r["dropout"], r["device"]))
        vs_ref = "—"
        if r["protocol"] == "ckks":
            vs_ref = _ratio(r["client_total"], refs.tenseal.get(d))
        elif r["protocol"] == "secaggplus" and r["device"] == "cpu":
            vs_ref = _flower_cell(refs.flower.get(r.get("id", "")), r.get("compute_seconds"))
        per_input = refs.add[d] * max(1, r["survivors"])
        device = "" if r["device"] == "cpu" else f" ({r['device']})"
        lines.append(
            f"| {r['protocol']}{device} | {r['n']} | {_d(d)} | {int(100 * r['dropout'])}% "
            f"| {_secs(r['client_total'])} | {_ratio(r['client_total'], refs.keystream[d])} "
            f"| {_secs(r['server_total'])} | {_ratio(r['server_total'], per_input)} "
            f"| {_ratio(r['seconds'], base['seconds'] if base else None)} | {vs_ref} "
            f"| {_size(r['bytes_per_client'])} | {r['expansion']:.2f}x | {r['peak_rss_mib']:.0f} |"
        )
    lines += ["", "References (same run):", ""]
    lines += ["| d | keystream | numpy add | TenSEAL alone |", "|---:|---:|---:|---:|"]
    for d in sorted(refs.keystream):
        lines.append(
            f"| {_d(d)} | {refs.keystream[d] * 1e3:.3f} ms | {refs.add[d] * 1e3:.3f} ms "
            f"| {refs.tenseal[d] * 1e3:.1f} ms |"
        )
    lines += _flower_table(grid)
    if grid.skipped:
        lines += ["", "Skipped (estimated seconds over the cap; raise `SECAGG_BENCH_CAP`):", ""]
        lines.append(", ".join(f"{c.id} (~{estimate_seconds(c):,.0f} s)" for c in grid.skipped))
    if not grid.cuda:
        lines += ["", "CUDA rows: no GPU on this machine, not run."]
    if grid.gas:
        lines += ["", "Gas on the embedded chain (`secagg.chain.gas`):", "", grid.gas]
    return "\n".join(lines) + "\n"


def _flower_cell(ref: dict[str, Any] | None, ours: float | None) -> str:
    """The secaggplus "vs ref" cell: Flower's round seconds / ours, or why there is none."""
    if ref is None or ours is None:
        return "—"
    status = ref.get("status")
    if status == "ok":
        return _ratio(ref["seconds"], ours)
    if status == "skipped":
        return f"skipped (~{ref['estimate']:,.0f} s)"
    return {"no flwr": "no flwr", "halted": "Flower halts"}.get(str(status), "—")


def _flower_table(grid: GridRun) -> list[str]:
    """Flower's full rounds, one row per secaggplus case, beside our compute of the case."""
    rows = {r["id"]: r for r in grid.rows if "id" in r}
    refs = grid.references.flower
    if not refs:
        return []
    lines = [
        "",
        "Flower 1.42's SecAgg+ round, the secaggplus reference "
        "(`secagg.clients.bench.flower_reference.flower_round`: Flower's client mod and server "
        "workflow computation, every client and the server in one process, without its "
        "engine). Same n, d, k neighbours and threshold t as the case (Flower's `num_shares` "
        "= k + 1, k + 2 for odd k: its ring has even degree), and the case's dropouts: those "
        "that vanish at masked input are Flower's dropped clients (keys shared, no masked "
        "input), those that vanish at unmasking drop before Flower's unmask stage, and those "
        "that vanish before sharing keys are left out of Flower's round (its workflow halts "
        "on a client nobody holds shares of). *ours* is the case's compute: all clients' "
        "seconds plus the server's (secagg spreads mask fills over every core; Flower's "
        "numpy Mersenne Twister and pycryptodome Shamir run on one). Flower rounds estimated "
        "over the cap are not run.",
        "",
        "| case | Flower n | k | t | dropped / at unmask / left out | Flower clients "
        "| Flower server | Flower round | ours | Flower / ours |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for key in sorted(refs, key=lambda k: _case_order(rows.get(k), k)):
        ref, row = refs[key], rows.get(key)
        ours = row.get("compute_seconds") if row else None
        k = ref.get("k", "—")
        if ref.get("degree") not in (None, k):
            k = f"{k} (ring: {ref['degree']})"
        head = (
            f"| {key} | {ref.get('n', '—')} | {k} | {ref.get('t', '—')} "
            f"| {ref.get('dropped', 0)} / {ref.get('dropped_at_unmask', 0)} / "
            f"{ref.get('excluded', 0)} "
        )
        if ref.get("status") == "ok":
            lines.append(
                head + f"| {_secs(ref['clients'])} | {_secs(ref['server'])} "
                f"| {_secs(ref['seconds'])} | {_secs(ours) if ours else '—'} "
                f"| {_flower_cell(ref, ours)} |"
            )
        else:
            why = _flower_cell(ref, 1.0) if ref.get("status") != "no parameters" else "—"
            lines.append(head + f"| | | {why} | {_secs(ours) if ours else '—'} | |")
    return lines


def _case_order(row: dict[str, Any] | None, key: str) -> tuple[int, int, float, str]:
    if row is None:
        return (0, 0, 0.0, key)
    return (row["d"], row["n"], row["dropout"], key)


def write_grid_outputs(grid: GridRun, *, out: Path, results_md: Path | None = None) -> list[Path]:
    """``out/grid-<kind>.json``, ``out/grid-<kind>.md``, the plots in ``out``; with
    ``results_md``, the table also replaces the grid section of that file."""
    out.mkdir(parents=True, exist_ok=True)
    table = markdown(grid)
    kind = grid.kind
    json_path = out / f"grid-{kind}.json"
    json_path.write_text(json.dumps(grid.as_json(), indent=2, sort_keys=True, default=str) + "\n")
    md_path = out / f"grid-{kind}.md"
    md_path.write_text(table)
    if results_md is not None:
        text = results_md.read_text() if results_md.exists() else ""
        section = f"{GRID_BEGIN}\n{table}{GRID_END}"
        if GRID_BEGIN in text and GRID_END in text:
            head, rest = text.split(GRID_BEGIN, 1)
            text = head + section + rest.split(GRID_END, 1)[1]
        else:
            text = text.rstrip("\n") + "\n\n## The grid (issue #8)\n\n" + section + "\n"
        results_md.write_text(text)
    return [json_path, md_path, *_plots(grid.rows, out, kind)]


def _plots(rows: list[dict[str, Any]], out: Path, kind: str) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cpu = [r for r in rows if r["device"] == "cpu" and not r.get("aborted")]
    if not cpu:
        return []
    n_small = min(r["n"] for r in cpu)
    d_mid = sorted({r["d"] for r in cpu})[len({r["d"] for r in cpu}) // 2]
    n_big = max(r["n"] for r in cpu if r["protocol"] != "secaggplus" or r["n"] <= 100)
    by_d = "d (entries per update)"
    figures = [  # name, x, y, which rows, x label, y label, title, log x
        ("cost_vs_d", "d", "client_total", {"n": n_small, "dropout": 0.0}, by_d,
         "client seconds per client", f"client seconds vs d (n = {n_small}, no dropout)", True),
        ("bytes_vs_d", "d", "bytes_per_client", {"n": n_small, "dropout": 0.0}, by_d,
         "bytes sent per client", f"bytes per client vs d (n = {n_small}, no dropout)", True),
        ("cost_vs_dropout", "dropout", "server_total", {"n": n_big, "d": d_mid},
         "clients dropped (fraction)", "server seconds",
         f"server cost vs dropout (n = {n_big}, d = {d_mid})", False),
    ]  # fmt: skip
    paths = []
    for name, x, y, where, xlabel, ylabel, title, log_x in figures:
        fig, ax = plt.subplots(figsize=(6, 4))
        for protocol in sorted({r["protocol"] for r in cpu}):
            pts = sorted(
                (r[x], r[y])
                for r in cpu
                if r["protocol"] == protocol and all(r[k] == v for k, v in where.items())
            )
            if pts:
                ax.plot(*zip(*pts, strict=True), "o-", label=protocol)
        if log_x:
            ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
        ax.legend(fontsize="small")
        fig.tight_layout()
        path = out / f"{name}-{kind}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)
    return paths


def main(argv: list[str] | None = None) -> None:
    """Re-render a grid's markdown and plots from its JSON (``grid-<kind>.json``)."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("json", type=Path)
    parser.add_argument("--results-md", type=Path, default=None)
    args = parser.parse_args(argv)
    grid = GridRun.from_json(json.loads(args.json.read_text()))
    write_grid_outputs(grid, out=args.json.parent, results_md=args.results_md)


if __name__ == "__main__":  # pragma: no cover
    main()
