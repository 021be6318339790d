"""What a failing test's report carries of a 3-node cluster (--pgstandby-report): short by
default (a line per server; the setup output and last 30 log lines of the nodes a harness
error names), full (every node's setup output and log tail), none."""

from __future__ import annotations

import re

import pytest

TESTS = """
from pytest_pgstandby import factories

three = factories.cluster(scope="module", backend="local", standbys=2)


def test_the_applications_own_bug(three):
    raise ValueError("a bug of the application's own")


def test_a_wait_of_the_harness(three):
    three.primary.wait_for_catchup(three.standbys[1], target_lsn="FFFF/0", timeout=0.3)
"""


def _failure(out: str, test: str) -> str:
    """The report of ``test`` in pytest's FAILURES block: up to the next test's header."""
    start = out.index(f"_ {test} _")
    end = re.search(r"\n_{3,} test_|\n=+ short test summary", out[start + 1 :])
    return out[start : start + 1 + (end.start() if end else len(out))]


def _run(pytester: pytest.Pytester, *args: str) -> str:
    pytester.makepyfile(test_app=TESTS)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", *args)
    result.assert_outcomes(failed=2)
    return result.stdout.str()


def test_short_by_default(pytester: pytest.Pytester) -> None:
    out = _run(pytester)
    mine = _failure(out, "test_the_applications_own_bug")
    # the application's own error: the servers' state, one line each, and no log
    assert re.search(r"primary: primary, WAL at \d+/[0-9A-F]+, 2 standby\(s\) streaming", mine)
    for name in ("standby1", "standby2"):
        assert re.search(rf"{name}: standby, streaming from 127\.0\.0\.1:\d+, received ", mine)
    assert " log (last 30 lines)" not in mine and " setup " not in mine
    assert len(mine.splitlines()) < 40, mine

    harness = _failure(out, "test_a_wait_of_the_harness")
    # the harness's error names standby2 and primary: their setup output and log tails
    for name in ("primary", "standby2"):
        assert f"pgstandby {name} log (last 30 lines)" in harness
        assert f"pgstandby {name} setup (last 30 lines)" in harness
    assert "pgstandby standby1 log" not in harness
    print(f"short report lines: {len(mine.splitlines())} (own bug), "
          f"{len(harness.splitlines())} (harness wait)")  # fmt: skip
    assert len(harness.splitlines()) < 220, harness


def test_full_and_none(pytester: pytest.Pytester) -> None:
    full = _failure(_run(pytester, "--pgstandby-report=full"), "test_the_applications_own_bug")
    for name in ("primary", "standby1", "standby2"):
        assert f"pgstandby {name} log" in full and f"pgstandby {name} setup" in full
    none = _run(pytester, "--pgstandby-report", "none")
    for test in ("test_the_applications_own_bug", "test_a_wait_of_the_harness"):
        report = _failure(none, test)
        assert not re.search(r"^-+ pgstandby ", report, re.MULTILINE), report
    assert len(_failure(none, "test_the_applications_own_bug").splitlines()) < 15
