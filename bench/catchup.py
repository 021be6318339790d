"""How soon ``wait_for_catchup`` returns after the standby has replayed a write: each round
inserts one row on the primary, then either calls ``primary.wait_for_catchup(standby)``
or spins on one open connection, with no pause, until the standby's replay LSN reaches the
same target (the floor: when the replay is first visible). Rounds alternate; prints
min / median / max of both, in milliseconds, and the difference of medians.

    python bench/catchup.py --rounds 200 --backend local --json bench/results/catchup.json
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

from pytest_pgstandby import Settings, start_cluster


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--backend", default="local")
    parser.add_argument("--image", default="pgstandby/postgres:15")
    parser.add_argument("--json", default="bench/results/catchup.json")
    args = parser.parse_args()
    times: dict[str, list[float]] = {"wait_for_catchup": [], "spin (floor)": []}
    with start_cluster(Settings(backend=args.backend, image=args.image)) as cluster:
        primary, standby = cluster.primary, cluster.standby
        primary.execute("CREATE TABLE bench_catchup (i int)")
        with primary.connect() as writer, standby.connect() as reader:
            for i in range(args.rounds):
                for way in times:
                    writer.execute("INSERT INTO bench_catchup VALUES (%s)", [i])
                    started = time.perf_counter()
                    if way == "wait_for_catchup":
                        primary.wait_for_catchup(standby)
                    else:
                        target = writer.execute("SELECT pg_current_wal_insert_lsn()").fetchone()
                        assert target is not None
                        sql = "SELECT pg_last_wal_replay_lsn() >= %s"
                        while (
                            not (row := reader.execute(sql, [target[0]]).fetchone()) or not row[0]
                        ):
                            pass
                    times[way].append((time.perf_counter() - started) * 1000)
    print(f"vm: {platform.machine()}, backend {args.backend}, rounds={args.rounds}")
    print(f"{'':18} {'min':>8} {'median':>8} {'max':>8}")
    for name, values in times.items():
        low, mid, high = min(values), statistics.median(values), max(values)
        print(f"{name:18} {low:6.2f}ms {mid:6.2f}ms {high:6.2f}ms")
    gap = statistics.median(times["wait_for_catchup"]) - statistics.median(times["spin (floor)"])
    print(f"wait_for_catchup returns {gap:.2f} ms (median) after the replay is visible")
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({**times, "gap_ms": gap}))
    print(f"raw numbers: {out}")


if __name__ == "__main__":
    main()
