"""Nothing to a Docker pair whose standby replayed a row, beside testcontainers' single
``PostgresContainer`` on the same image, alternating in one run; and where the pair's time
goes: a timeline of each round, read from the Docker daemon's own timestamps (container
created and started, and the log lines of the scripts and servers). Prints min / median /
max, the ratio of medians and the median timeline; writes JSON.

    python bench/docker_pair.py --rounds 7 --json bench/results/docker_pair.json
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from datetime import datetime
from typing import Any

from _report import report  # bench/ is the script's own directory
from engines import testcontainers_single

from pytest_pgstandby import Settings, start_cluster

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


def pgstandby_pair(image: str, timelines: list[dict[str, float]]) -> float:
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
    times: dict[str, list[float]] = {"pgstandby pair": [], "testcontainers single": []}
    timelines: list[dict[str, float]] = []
    pgstandby_pair(args.image, [])  # a first start warms the daemon's caches
    for _ in range(args.rounds):
        times["pgstandby pair"].append(pgstandby_pair(args.image, timelines))
        times["testcontainers single"].append(testcontainers_single(args.image))
    report(
        times,
        ("pgstandby pair", "testcontainers single"),
        args.json,
        f"vm: {platform.machine()}, rounds={args.rounds}, image {args.image} (a pair: nothing "
        "to a row replayed on the standby; testcontainers: nothing to SELECT 1 on one server)",
    )
    print("\nwhere the pair's time goes (median seconds from the start, Docker's timestamps):")
    phases = dict.fromkeys(p for t in timelines for p in t)
    rows = [(statistics.median(t[p] for t in timelines if p in t), p) for p in phases]
    for at, phase in sorted(rows):
        print(f"  {at:6.3f}s  {phase}")


if __name__ == "__main__":
    main()
