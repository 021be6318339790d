"""Reliability under repetition: ``pytest -n 2`` on a suite of 10 tests, each building a
cluster of its own with the scripts (local backend, fresh="rebuild"), run N times in a
PGSTANDBY_TMPDIR of its own. After every run: no session directory, port mark or server
process left; within a run no two clusters shared a port or a directory; and each
worker's count of open file descriptors stays flat from test to test. Prints the wall
times (min / median / max) and those findings, writes JSON.

    python bench/repeats.py --repeats 20 --json bench/results/repeats.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from pytest_pgstandby.backends.sessions import leftovers

SUITE = """
import json, os
import pytest
from pytest_pgstandby import factories

pair = factories.cluster(scope="function", backend="local", fresh="rebuild")

@pytest.mark.parametrize("i", range(10))
def test_cluster(pair, i):
    pair.primary.execute("CREATE TABLE t AS SELECT %s AS x" % i)
    pair.primary.wait_for_catchup(pair.standby)
    assert pair.standby.execute("SELECT x FROM t") == [(i,)]
    with open(os.environ["REPEATS_RECORD"], "a") as out:
        out.write(json.dumps({
            "worker": os.environ.get("PYTEST_XDIST_WORKER", "main"),
            "ports": [n.port for n in pair.nodes],
            "root": str(pair.backend.root),
            "fds": len(os.listdir("/proc/self/fd")),
        }) + "\\n")
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--json", default="bench/results/repeats.json")
    args = parser.parse_args()
    times: list[float] = []
    problems: list[str] = []
    fd_spread: list[int] = []
    with tempfile.TemporaryDirectory(prefix="bench-repeats-") as tmp:
        suite, base = Path(tmp, "suite"), Path(tmp, "base")
        suite.mkdir()
        base.mkdir()
        os.chmod(tmp, 0o755)
        os.chmod(base, 0o755)
        (suite / "test_repeats.py").write_text(SUITE)
        for run in range(args.repeats):
            record = Path(tmp, f"record-{run}.jsonl")
            env = {**os.environ, "PGSTANDBY_TMPDIR": str(base), "REPEATS_RECORD": str(record)}
            started = time.perf_counter()
            done = subprocess.run(
                [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", "2"],
                cwd=suite, env=env, capture_output=True, text=True, timeout=900,
            )  # fmt: skip
            times.append(time.perf_counter() - started)
            if done.returncode != 0:
                problems.append(f"run {run}: exit {done.returncode}: {done.stdout[-500:]}")
            rows = [json.loads(line) for line in record.read_text().splitlines()]
            roots = [r["root"] for r in rows]
            if len(rows) != 10 or len(set(roots)) != len(roots):
                problems.append(f"run {run}: {len(rows)} tests recorded, roots {roots}")
            by_worker: dict[str, list[int]] = defaultdict(list)
            for row in rows:
                by_worker[row["worker"]].append(row["fds"])
            for counts in by_worker.values():
                fd_spread.append(max(counts[1:] or counts) - min(counts[1:] or counts))
            left = leftovers(base)
            if left:
                problems.append(f"run {run}: left behind {left}")
    print(f"vm: {platform.machine()}, {args.repeats} runs of pytest -n 2 on 10 clusters")
    print(f"{'':14} {'min':>7} {'median':>7} {'max':>7}")
    print(
        f"{'wall time':14} {min(times):6.2f}s {statistics.median(times):6.2f}s {max(times):6.2f}s"
    )
    print(f"failed runs, collisions or leftovers: {len(problems)}")
    for problem in problems:
        print(f"  {problem}")
    print(f"largest fd spread within a worker (after its first test): {max(fd_spread)}")
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"times": times, "problems": problems, "fd_spread": fd_spread}))
    print(f"raw numbers: {out}")


if __name__ == "__main__":
    main()
