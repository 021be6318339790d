"""Nothing to a Docker pair whose standby replayed a row, warm (its containers made ahead
by docker_warm.py, as for the third and later clusters of a shape in a process) and cold
(kits off, as the first two), beside testcontainers' single ``PostgresContainer`` on the
same image, alternating in one run; and where each pair's time goes: a timeline, read
from the Docker daemon's own timestamps (container created and started, and the log lines
of the scripts and servers; a warm kit's containers were made before the call, so those
marks are negative). Prints min / median / max, the ratios of medians and the median
timelines; writes JSON.

    python bench/docker_pair.py --rounds 7 --json bench/results/docker_pair.json
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from datetime import datetime
from typing import Any

from _report import report  # bench/ is the script's own directory
from engines import testcontainers_single

from pytest_pgstandby import Settings, start_cluster
from pytest_pgstandby.backends.docker_warm import drain

#: (phase, node, the first log line that contains this, or a container state field)
MARKS = (
    ("primary container created", "primary", "Created"),
    ("standby container created", "standby1", "Created"),
    ("primary container started", "primary", "StartedAt"),
    ("standby container started", "standby1", "StartedAt"),
    ("standby script: section 1 begins", "standby1", "Starting standby setup"),
    ("primary ready (last start)", "primary", "@database system is ready to accept connections"),
    ("standby script: primary seen ready", "standby1", "Primary is ready"),
    ("standby: base backup done", "standby1", "Configuring standby settings"),
    ("standby server accepts", "standby1", "ready to accept read-only connections"),
    ("standby streams", "standby1", "started streaming WAL"),
)


def _when(stamp: str) -> float:
    """A Docker timestamp (RFC 3339, nanoseconds) as a time.time()."""
    head, _, frac = stamp.rstrip("Z").partition(".")
    return datetime.fromisoformat(f"{head}.{(frac + '000000')[:6]}+00:00").timestamp()


def _timeline(cluster: Any, began: float) -> dict[str, float]:
    """Seconds from ``began`` (a time.time()) to each mark of MARKS that was seen."""
    seen: dict[str, float] = {}
    for phase, name, mark in MARKS:
        container = cluster.node(name).handle.wrapped  # docker-py's container
        container.reload()
        if mark in ("Created", "StartedAt"):
            state = container.attrs if mark == "Created" else container.attrs["State"]
            seen[phase] = _when(state[mark]) - began
            continue
        last = mark.startswith("@")  # the primary logs "ready" twice: the init server's too
        lines = container.logs(timestamps=True).decode(errors="replace").splitlines()
        hits = [line for line in lines if mark.lstrip("@") in line]
        if hits:
            seen[phase] = _when((hits[-1] if last else hits[0]).split(" ", 1)[0]) - began
    return seen


def pgstandby_pair(image: str, timelines: list[dict[str, float]], warm: bool = True) -> float:
    """One pair; ``warm``: from the kit made ahead (docker_warm.py) once two of this
    shape were built, else with kits off (PGSTANDBY_WARM=0), as the first of a shape."""
    os.environ["PGSTANDBY_WARM"] = "1" if warm else "0"
    began, started = time.time(), time.perf_counter()
    settings = Settings(backend="docker", image=image, profile="documented")
    with start_cluster(settings, standbys=1) as cluster:
        built = time.perf_counter() - started
        cluster.primary.execute("CREATE TABLE t AS SELECT 1 AS x")
        cluster.primary.wait_for_catchup(cluster.standby)
        took = time.perf_counter() - started
        timelines.append(
            {**_timeline(cluster, began), "start_cluster returned": built, "row replayed": took}
        )
        return took


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--image", default="pgstandby/postgres:15")
    parser.add_argument("--json", default="bench/results/docker_pair.json")
    args = parser.parse_args()
    warm, cold, single = "pair, warm kit", "pair, cold", "testcontainers single"
    times: dict[str, list[float]] = {warm: [], cold: [], single: []}
    timelines: dict[str, list[dict[str, float]]] = {warm: [], cold: []}
    for _ in range(2):  # a first start warms the daemon's caches; the second begins a kit
        pgstandby_pair(args.image, [])
    for _ in range(args.rounds):
        times[warm].append(pgstandby_pair(args.image, timelines[warm]))
        times[cold].append(pgstandby_pair(args.image, timelines[cold], warm=False))
        times[single].append(testcontainers_single(args.image))
    drain()
    report(
        times,
        (warm, single),
        args.json,
        f"vm: {platform.machine()}, rounds={args.rounds}, image {args.image} (a pair: nothing "
        "to a row replayed on the standby, its containers made ahead in the background while "
        "the other two ran (warm) or made when asked (cold); testcontainers: nothing to "
        "SELECT 1 on one server)",
        against_all=True,
    )
    for kind, kept in timelines.items():
        print(f"\nwhere the {kind}'s time goes (median seconds from the call, Docker's clock):")
        phases = dict.fromkeys(p for t in kept for p in t)
        rows = [(statistics.median(t[p] for t in kept if p in t), p) for p in phases]
        for at, phase in sorted(rows):
            print(f"  {at:6.3f}s  {phase}")


if __name__ == "__main__":
    main()
