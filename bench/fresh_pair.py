"""A fresh pair for one test: restored from a snapshot of a documented-built pair
(``fresh="snapshot"``, the function-scoped default) against built by the scripts
(``fresh="rebuild"``), alternating rounds in one run; each until the standby streams,
then its teardown. Prints min / median / max and the ratio of medians, writes JSON.

    python bench/fresh_pair.py --rounds 15 --json bench/results/fresh_pair.json
    python bench/fresh_pair.py --backend docker --image pgstandby/postgres:15 \
        --json bench/results/fresh_pair_docker.json
"""

from __future__ import annotations

import argparse
import platform
import time

from _report import report  # bench/ is the script's own directory

from pytest_pgstandby import Settings, start_cluster, take_snapshot


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--json", default="bench/results/fresh_pair.json")
    parser.add_argument("--backend", choices=("local", "docker"), default="local")
    parser.add_argument("--image", default="pgstandby/postgres:15", help="for --backend docker")
    args = parser.parse_args()
    settings = Settings(backend=args.backend, image=args.image, profile="documented")
    times: dict[str, list[float]] = {
        "snapshot up": [],
        "rebuild up": [],
        "snapshot down": [],
        "rebuild down": [],
    }
    with start_cluster(settings) as built, take_snapshot(built) as snapshot:
        for _ in range(args.rounds):
            for way in ("snapshot", "rebuild"):
                started = time.perf_counter()
                with snapshot.restore() if way == "snapshot" else start_cluster(settings) as pair:
                    up = time.perf_counter()
                    assert (
                        pair.standby.query_value("SELECT status FROM pg_stat_wal_receiver")
                        == "streaming"
                    )
                    checked = time.perf_counter()
                times[f"{way} up"].append(up - started)
                times[f"{way} down"].append(time.perf_counter() - checked)
    report(
        times,
        ("snapshot up", "rebuild up"),
        args.json,
        f"vm: {platform.machine()}, rounds={args.rounds}, {args.backend} backend",
    )


if __name__ == "__main__":
    main()
