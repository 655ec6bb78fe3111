"""Bytes a participant downloads per round, by kind, against n (issue 20).

Runs one secaggplus round of the demo (digits MLP, d = 4,811, embedded chain, memory store)
for each n, every participant's store wrapped in a :class:`~secagg.store.CountingStore`, and
writes ``benchmarks/downloads.md``. "Before" adds what participants fetched until issue 20:
every other survivor's masked input (they now trust the aggregator's on-chain declaration of
unavailable or malformed inputs), measured from the same round's blob sizes.

    .venv/bin/python benchmarks/participant_downloads.py [n ...]
"""

from __future__ import annotations

import sys
from pathlib import Path

from secagg.clients.demo.run import Demo, DemoConfig
from secagg.store import CountingStore, Store


def measure(n: int) -> dict[str, float]:
    readers: dict[int, CountingStore] = {}

    def wrap(u: int, store: Store) -> Store:
        return readers.setdefault(u, CountingStore(store))

    with Demo(DemoConfig(protocol="secaggplus", clients=n, rounds=1, seed=1),
              participant_store=wrap) as demo:  # fmt: skip
        demo.run()
        postings = demo.ledger.postings(1)
        bundles = {cid for _, cid in postings.shares.values()}
        inputs = {cid: len(demo.store.get(cid)) for cid in postings.reveals.values()}
        k = demo.proto.num_neighbors  # type: ignore[attr-defined]
    rows = []
    for store in readers.values():
        got_bundles = sum(b for cid, b in store.reads.items() if cid in bundles)
        got_inputs = sum(b for cid, b in store.reads.items() if cid in inputs)
        rows.append((store.bytes_read, got_bundles, got_inputs))
    count = len(rows)
    total, got_bundles, got_inputs = (sum(r[i] for r in rows) / count for i in range(3))
    input_size = sum(inputs.values()) / len(inputs)
    return {
        "n": n,
        "k": k,
        "total": total,
        "bundles": got_bundles,
        "inputs": got_inputs,
        "other": total - got_bundles - got_inputs,
        "before": total - got_inputs + (len(inputs) - 1) * input_size,
        "input_size": input_size,
    }


def main(ns: list[int]) -> None:
    rows = [measure(n) for n in ns]
    lines = [
        "# Bytes a participant downloads per round (secaggplus, d = 4,811)",
        "",
        "`.venv/bin/python benchmarks/participant_downloads.py " + " ".join(map(str, ns)) + "`",
        "",
        "| n | k | total | model + spec | share bundles | others' inputs | before (all inputs) |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['n']} | {r['k']} | {r['total']:,.0f} | {r['other']:,.0f} | "
            f"{r['bundles']:,.0f} | {r['inputs']:,.0f} | {r['before']:,.0f} |"
        )
    lines += [
        "",
        "A masked input is 4 d bytes plus a header ({:,.0f} bytes here). Before, each "
        "participant fetched the |U| - 1 others' (n^2 d over the round); now none: the "
        "aggregator declares on chain every input it could not fetch or decode, and U less "
        "those is U3. What is left is the model (4 d), the spec, and the n share bundles "
        "(k boxes each, independent of d).".format(rows[0]["input_size"]),
        "",
    ]
    out = Path(__file__).with_name("downloads.md")
    out.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [5, 10, 20, 40])
