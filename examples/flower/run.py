"""Secure FedAvg on digits with 10 simulated Flower SuperNodes, then the same rounds through
``secagg.simulate`` on the same inputs and seed: the sums must agree.

    python examples/flower/run.py --protocol secaggplus --rounds 5

Runs offline on Flower's simulation engine (Ray). Exit status 1 when a round's sum differs.
The apps are the ``secagg_app`` package's; to deploy them on real SuperNodes, see README.md here.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the secagg_app package

from flwr.simulation import run_simulation
from secagg_app.client_app import make_client_app
from secagg_app.server_app import make_server_app

from secagg import protocols, simulate
from secagg.clients.flower import SECURE_PROTOCOLS, simulate_seed

CKKS_TOLERANCE = 1e-6  # CKKS is approximate: its sums agree to this, not bit for bit


def tapped(directory: Path, round: int) -> tuple[dict[int, np.ndarray], dict[int, float]]:
    inputs, weights = {}, {}
    for path in sorted(directory.glob(f"{round}-*.npy")):
        v = np.load(path)
        cid = int(path.stem.split("-")[1])
        inputs[cid], weights[cid] = v[:-1], float(v[-1])
    return inputs, weights


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--protocol", default="secaggplus", choices=protocols.names())
    parser.add_argument("--nodes", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per phase")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tap:
        agreed = ("plain",) if args.protocol == "plain" else SECURE_PROTOCOLS
        client = make_client_app(seed=args.seed, save_inputs=tap, protocols=agreed)
        server, history = make_server_app(
            args.protocol,
            num_nodes=args.nodes,
            rounds=args.rounds,
            seed=args.seed,
            timeout=args.timeout,
        )
        run_simulation(
            server,
            client,
            num_supernodes=args.nodes,
            backend_config={"client_resources": {"num_cpus": 1, "num_gpus": 0.0}},
        )
        if len(history.results) != args.rounds:
            print(f"the ServerApp finished {len(history.results)} of {args.rounds} rounds")
            return 1
        print(f"\n{args.protocol}, {args.nodes} SuperNodes, seed {args.seed}")
        if args.protocol in ("ckks", "paillier"):
            print("(one node is the key holder: it decrypts the sum and sends no update)")
        print("round  survivors  accuracy  seconds  sum vs secagg.simulate")
        ok = True
        for rnd, result in enumerate(history.results):
            inputs, weights = tapped(Path(tap), rnd)
            proto = protocols.get(args.protocol, num_clients=len(inputs))
            seed = simulate_seed(args.seed, rnd)  # what a seeded node draws in round rnd
            expected = simulate(proto, inputs, weights=weights, seed=seed, round=rnd)
            diff = float(
                np.max(
                    np.abs(
                        np.asarray(result.ring_sum, dtype=np.float64)
                        - np.asarray(expected.ring_sum, dtype=np.float64)
                    )
                )
            )
            if args.protocol == "ckks":
                same = diff <= CKKS_TOLERANCE
                verdict = f"max |diff| {diff:.1e}" + ("" if same else " MISMATCH")
            else:
                same = np.array_equal(result.ring_sum, expected.ring_sum)
                verdict = "bit-identical" if same else f"MISMATCH (max |diff| {diff:.0f})"
            same = same and expected.session == result.session
            ok = ok and same
            print(
                f"{rnd:>5}  {len(result.survivors):>9}  {history.accuracy[rnd]:>8.1%}"
                f"  {history.seconds[rnd]:>7.2f}  {verdict}"
            )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
