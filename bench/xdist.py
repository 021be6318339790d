"""Wall time of 20 tests that each build a fresh local pair, serial (``-n 0``) against two
pytest-xdist workers (``-n 2``), alternating rounds in one run; and ``suite_100``: 100
tests on one session cluster, each with its own ``pgstandby_db``. Prints min / median /
max and the ratio, writes JSON.

    python bench/xdist.py --rounds 3 --json bench/results/xdist.json
"""

from __future__ import annotations

import argparse
import platform
import tempfile
from pathlib import Path

from _report import pytest_run as run
from _report import report  # bench/ is the script's own directory

FRESH_PAIRS = """
import pytest
from pytest_pgstandby import factories

pair = factories.cluster(scope="function", backend="local")

@pytest.mark.parametrize("i", range(20))
def test_pair(pair, i):
    pair.primary.execute("CREATE TABLE t AS SELECT 1 AS x")
    pair.primary.wait_for_catchup(pair.standby)
    assert pair.standby.execute("SELECT x FROM t") == [(1,)]
"""

SUITE_100 = """
import pytest

@pytest.mark.parametrize("i", range(100))
def test_db(pgstandby_db, pgstandby_cluster, i):
    pgstandby_db.execute("CREATE TABLE t AS SELECT %s AS x" % i)
    pgstandby_db.wait_replayed()
    assert pgstandby_db.execute("SELECT x FROM t", node=pgstandby_cluster.standby) == [(i,)]
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", default="bench/results/xdist.json")
    args = parser.parse_args()
    times: dict[str, list[float]] = {"20 pairs -n 0": [], "20 pairs -n 2": [], "suite_100": []}
    with tempfile.TemporaryDirectory(prefix="bench-xdist-") as tmp:
        fresh, suite = Path(tmp, "fresh"), Path(tmp, "suite")
        for directory, text in ((fresh, FRESH_PAIRS), (suite, SUITE_100)):
            directory.mkdir()
            (directory / "test_bench.py").write_text(text)
            (directory / "pytest.ini").write_text("[pytest]\npgstandby_backend = local\n")
        for _ in range(args.rounds):
            times["20 pairs -n 0"].append(run(fresh, "-n", "0"))
            times["20 pairs -n 2"].append(run(fresh, "-n", "2"))
            times["suite_100"].append(run(suite))
    report(
        times,
        ("20 pairs -n 2", "20 pairs -n 0"),
        args.json,
        f"vm: {platform.machine()}, rounds={args.rounds} (wall time of a whole pytest run)",
    )


if __name__ == "__main__":
    main()
