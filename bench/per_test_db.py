"""What ``pgstandby_db`` costs a test: creating a database on the primary until every
standby has it, and dropping it (standby sessions closed) until every standby replayed the
drop, on one session cluster per backend. Prints min / median / max, writes JSON.

    python bench/per_test_db.py --rounds 50 --backend local --json bench/results/per_test_db.json
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

from pytest_pgstandby import Settings, start_cluster
from pytest_pgstandby.databases import create_database, drop_database


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=50)
    parser.add_argument("--backend", default="local")
    parser.add_argument("--standbys", type=int, default=1)
    parser.add_argument("--image", default="pgstandby/postgres:15")
    parser.add_argument("--json", default="bench/results/per_test_db.json")
    args = parser.parse_args()
    settings = Settings(backend=args.backend, standbys=args.standbys, image=args.image)
    create: list[float] = []
    drop: list[float] = []
    with start_cluster(settings) as cluster:
        for _ in range(args.rounds):
            t0 = time.perf_counter()
            database = create_database(cluster)
            t1 = time.perf_counter()
            drop_database(database)
            t2 = time.perf_counter()
            create.append(t1 - t0)
            drop.append(t2 - t1)
    total = [c + d for c, d in zip(create, drop, strict=True)]
    print(
        f"vm: {platform.machine()}, backend={args.backend}, standbys={args.standbys}, "
        f"rounds={args.rounds}"
    )
    print(f"{'phase':16} {'min':>7} {'median':>7} {'max':>7}")
    for name, values in (("create+visible", create), ("drop+replayed", drop), ("per test", total)):
        print(
            f"{name:16} {min(values) * 1000:6.1f}ms {statistics.median(values) * 1000:6.1f}ms "
            f"{max(values) * 1000:6.1f}ms"
        )
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"create": create, "drop": drop, "backend": args.backend}))
    print(f"raw numbers: {out}")


if __name__ == "__main__":
    main()
