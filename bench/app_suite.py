"""An application's 16-test suite against a replica (issue 21): the code of
docs/applications.md (SQLAlchemy engines, Django settings, stale reads, read-your-writes, a
delayed replica, a failover, a partitioned and a frozen replica: 11 tests, some on a
cluster of their own) and 7 reads through two engines on the session cluster. Wall time of
the whole pytest run with ``-n 0`` and ``-n 2``, per backend, alternating in one run.

    python bench/app_suite.py --rounds 3 --json bench/results/app_suite.json
"""

from __future__ import annotations

import argparse
import platform
import re
import statistics
import tempfile
from pathlib import Path

from _report import pytest_run as run
from _report import report  # bench/ is the script's own directory

GUIDE = Path(__file__).resolve().parents[1] / "docs" / "applications.md"

READS = """

@pytest.mark.parametrize("n", range(7))
def test_reads_through_two_engines(engines, pgstandby_db, n):
    writes, reads = engines
    with writes.begin() as conn:
        conn.execute(text("CREATE TABLE r (n int)"))
        conn.execute(text("INSERT INTO r VALUES (:n)"), {"n": n})
    pgstandby_db.wait_replayed()
    with reads.connect() as conn:
        assert conn.execute(text("SELECT n FROM r")).scalar_one() == n
"""


def suite(directory: Path, backend: str) -> int:
    conftest, module = [], []
    for info, body in re.findall(r"^```(python[^\n]*)\n(.*?)^```", GUIDE.read_text(), re.M | re.S):
        (conftest if info.strip() == "python conftest.py" else module).append(body)
    text = "\n\n".join(module) + READS
    directory.mkdir()
    (directory / "conftest.py").write_text("\n\n".join(conftest))
    (directory / "test_app.py").write_text(text)
    ini = f"[pytest]\npgstandby_backend = {backend}\npgstandby_image = pgstandby/postgres:15\n"
    (directory / "pytest.ini").write_text(ini)
    return len(re.findall(r"^def test_", text, re.M)) + 6  # the parametrised one is 7


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--backends", default="local,docker")
    parser.add_argument("--json", default="bench/results/app_suite.json")
    args = parser.parse_args()
    backends = args.backends.split(",")
    times: dict[str, list[float]] = {f"{b} -n {n}": [] for b in backends for n in (0, 2)}
    with tempfile.TemporaryDirectory(prefix="bench-app-") as tmp:
        counts = {b: suite(Path(tmp, b), b) for b in backends}
        for _ in range(args.rounds):
            for b in backends:
                for n in (0, 2):
                    times[f"{b} -n {n}"].append(run(Path(tmp, b), "-n", str(n)))
    pairs = tuple((f"{b} -n 2", f"{b} -n 0") for b in backends)
    report(
        times,
        pairs[0],
        args.json,
        f"vm: {platform.machine()}, rounds={args.rounds}, tests per run: {counts} "
        "(wall time of a whole pytest run)",
    )
    for fast, slow in pairs[1:]:
        ratio = statistics.median(times[fast]) / statistics.median(times[slow])
        print(f"ratio of medians {fast} / {slow}: {ratio:.2f}")


if __name__ == "__main__":
    main()
