"""The pair-ready time per container engine, beside testcontainers' single
``PostgresContainer`` on the same engine and image, alternating in one run: nothing to a
standby that replayed a row (pytest-pgstandby) against nothing to one server that answers
(testcontainers). Engines are given as DOCKER_HOST values; the ones tests/remote-daemon.sh
and tests/podman-service.sh start are the defaults, where they answer.

    python bench/engines.py --rounds 5 --json bench/results/engines.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import psycopg

from pytest_pgstandby import Settings, start_cluster
from pytest_pgstandby.backends.containers import connect_docker

ENGINES = {
    "docker (local)": "unix:///var/run/docker.sock",
    "docker (tcp, netns)": "tcp://10.213.7.2:2375",  # tests/remote-daemon.sh: our own host
    "podman (rootful)": "unix:///run/podman/podman.sock",
}


def pgstandby_pair(image: str) -> float:
    started = time.perf_counter()
    settings = Settings(backend="docker", image=image, profile="documented")
    with start_cluster(settings, standbys=1) as cluster:
        cluster.primary.execute("CREATE TABLE t AS SELECT 1 AS x")
        cluster.primary.wait_for_catchup(cluster.standby)
        return time.perf_counter() - started


def testcontainers_single(image: str) -> float:
    from testcontainers.community.postgres import PostgresContainer

    started = time.perf_counter()
    with PostgresContainer(image, driver=None) as pg:
        with psycopg.connect(pg.get_connection_url(), connect_timeout=10) as conn:
            conn.execute("SELECT 1")
        return time.perf_counter() - started


SIDES = (("pgstandby pair", pgstandby_pair), ("testcontainers single", testcontainers_single))


def answers(url: str) -> bool:
    if url.startswith("tcp://10.213.7.2") and not os.path.exists("/run/netns/pgstandby-remote"):
        return False  # only our own namespace's address is ever dialled
    os.environ["DOCKER_HOST"] = url
    try:
        connect_docker(timeout=3).close()
        return True
    except Exception:
        return False


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--image", default="pgstandby/postgres:15")
    parser.add_argument("--json", default="bench/results/engines.json")
    args = parser.parse_args()
    results: dict[str, dict[str, list[float] | str]] = {}
    for name, url in ENGINES.items():
        if not answers(url):
            print(f"{name}: no daemon answers at {url}; skipped")
            continue
        times: dict[str, list[float]] = {"pgstandby pair": [], "testcontainers single": []}
        errors: dict[str, str] = {}
        for _ in range(args.rounds):  # alternating: the machine's noise hits both sides
            for side, run in (
                ("pgstandby pair", pgstandby_pair),
                ("testcontainers single", testcontainers_single),
            ):
                if side in errors:
                    continue
                try:
                    times[side].append(run(args.image))
                except Exception as exc:  # testcontainers' own fails on Podman: say so
                    errors[side] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:120]}"
        results[name] = {**times, **{f"{k} error": v for k, v in errors.items()}}
        print(f"\n{name} ({url}), {args.rounds} rounds")
        for side, values in times.items():
            if values:
                low, mid, high = min(values), statistics.median(values), max(values)
                print(f"  {side:22} {low:6.2f}s {mid:6.2f}s {high:6.2f}s  (min median max)")
            else:
                print(f"  {side:22} failed: {errors.get(side)}")
        if times["pgstandby pair"] and times["testcontainers single"]:
            ratio = statistics.median(times["pgstandby pair"]) / statistics.median(
                times["testcontainers single"]
            )
            print(f"  ratio of medians pgstandby pair / testcontainers single: {ratio:.2f}")
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"machine": platform.platform(), **results}))
    print(f"raw numbers: {out}")


if __name__ == "__main__":
    main()
