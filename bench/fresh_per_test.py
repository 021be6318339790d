"""A fresh pair per test as a test sees it: pytest runs N tests, each with its own pair
from a function-scoped factory (write on the primary, wait for the standby, read it
there), once with ``--pgstandby-fresh rebuild`` (the scripts each time) and once with
``snapshot`` (copies; on Docker the next copy is made while a test runs), alternating
rounds in one run. The time is pytest's own setup duration of each test (the fixture's
wait), the first test of a run left out (it builds what the copies come from).
``--work S`` adds S seconds to each test body, for what an application's test does
besides.

    python bench/fresh_per_test.py --backend docker --tests 8 --rounds 3
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
from pathlib import Path

from _report import pytest_run, report  # bench/ is the script's own directory

CONFTEST = """
import json, os
from pytest_pgstandby import factories

pair = factories.cluster(scope="function")

def pytest_runtest_logreport(report):
    if report.when == "setup":
        with open(os.environ["SETUPS"], "a") as out:
            out.write(json.dumps([report.nodeid, report.duration]) + "\\n")
"""

TESTS = """
import time
import pytest

@pytest.mark.parametrize("n", range({tests}))
def test_one(pair, n):
    pair.primary.execute("CREATE TABLE t AS SELECT %s AS n", params=[n])
    pair.primary.wait_for_catchup(pair.standby)
    assert pair.standby.execute("SELECT n FROM t") == [(n,)]
    time.sleep({work})
"""


def run(folder: Path, mode: str, args: argparse.Namespace) -> list[float]:
    setups = folder / f"setups-{mode}.jsonl"
    setups.unlink(missing_ok=True)
    os.environ["SETUPS"] = str(setups)  # the conftest's hook appends there
    options = ["--pgstandby-backend", args.backend, "--pgstandby-fresh", mode]
    if args.backend == "docker":
        options += ["--pgstandby-image", args.image, "--pgstandby-profile", "documented"]
    pytest_run(folder, "-p", "no:xdist", *options)
    durations = [json.loads(line)[1] for line in setups.read_text().splitlines()]
    return durations[1:]  # the first builds the snapshot (or is a build like the rest)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--backend", choices=("local", "docker"), default="docker")
    parser.add_argument("--image", default="pgstandby/postgres:15")
    parser.add_argument("--tests", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--work", type=float, default=0.0)
    parser.add_argument("--json", default="bench/results/fresh_per_test.json")
    args = parser.parse_args()
    times: dict[str, list[float]] = {"snapshot setup": [], "rebuild setup": []}
    with tempfile.TemporaryDirectory(prefix="pgstandby-bench-") as tmp:
        folder = Path(tmp)
        (folder / "conftest.py").write_text(CONFTEST)
        (folder / "test_fresh.py").write_text(TESTS.format(tests=args.tests, work=args.work))
        for _ in range(args.rounds):
            for mode in ("snapshot", "rebuild"):
                times[f"{mode} setup"] += run(folder, mode, args)
    report(
        times,
        ("snapshot setup", "rebuild setup"),
        args.json,
        f"vm: {platform.machine()}, {args.backend} backend, {args.tests} tests x "
        f"{args.rounds} rounds, {args.work:g} s of work per test",
    )


if __name__ == "__main__":
    main()
