"""Time from nothing to a streaming pair, per backend, measured side by side.

Runs each backend ``--rounds`` times, alternating (local, docker, local, ...), so both
see the same machine noise; prints min / median / max per backend and the ratio of
medians, and writes the raw numbers as JSON.

    python bench/startup.py --rounds 7 --json bench/results/startup.json
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

from pytest_pgstandby import Settings, start_cluster
from pytest_pgstandby.backends.select import docker_status


def one_round(settings: Settings) -> dict[str, float]:
    """Seconds to a streaming pair (start_cluster returns once the standby streams),
    then to a replayed row, then to a clean teardown."""
    t0 = time.perf_counter()
    with start_cluster(settings) as cluster:
        t_up = time.perf_counter()
        cluster.primary.execute("CREATE TABLE bench AS SELECT 1 AS x")
        cluster.primary.wait_for_catchup(cluster.standby)
        t_row = time.perf_counter()
    t_down = time.perf_counter()
    return {"up": t_up - t0, "first_row": t_row - t_up, "teardown": t_down - t_row}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--image", default="pgstandby/postgres:15")
    parser.add_argument("--backends", default="local,docker")
    parser.add_argument("--json", type=Path, default=Path("bench/results/startup.json"))
    args = parser.parse_args()

    backends = args.backends.split(",")
    if "docker" in backends and not docker_status(args.image)[0]:
        print(f"docker skipped: {docker_status(args.image)[1]}")
        backends.remove("docker")
    settings = {b: Settings(backend=b, image=args.image) for b in backends}
    samples: dict[str, list[dict[str, float]]] = {b: [] for b in backends}
    for _ in range(args.rounds):
        for backend in backends:  # alternate: both sides share the same noise
            samples[backend].append(one_round(settings[backend]))

    print(f"{platform.node()}: {platform.processor() or platform.machine()}, rounds={args.rounds}")
    print(f"{'backend':8} {'phase':10} {'min':>7} {'median':>7} {'max':>7}")
    medians: dict[str, float] = {}
    for backend in backends:
        for phase in ("up", "first_row", "teardown"):
            values = [s[phase] for s in samples[backend]]
            med = statistics.median(values)
            if phase == "up":
                medians[backend] = med
            print(f"{backend:8} {phase:10} {min(values):7.2f} {med:7.2f} {max(values):7.2f}")
    if len(medians) == 2:
        print(f"ratio of 'up' medians docker/local: {medians['docker'] / medians['local']:.2f}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"rounds": args.rounds, "samples": samples}, indent=2))
    print(f"raw numbers: {args.json}")


if __name__ == "__main__":
    main()
