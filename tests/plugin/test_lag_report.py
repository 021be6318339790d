"""A failing assert_replication_lag in a downstream project's test: its report carries the
LSNs the check saw while it waited, as a table, and their picture."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

LAGGING_TEST = """
from pytest_pgstandby.assertions import assert_replication_lag


def test_lags(pgstandby_primary, pgstandby_standby):
    # replayed and acknowledged: the primary's walsender knows where the standby stands
    pgstandby_primary.execute("CREATE TABLE before_the_pause (x int)")
    pgstandby_primary.wait_for_catchup(pgstandby_standby)
    pgstandby_standby.pause()
    try:
        assert_replication_lag(pgstandby_primary, pgstandby_standby, max_seconds=0.5)
    finally:
        pgstandby_standby.resume()
"""


def test_a_failing_lag_check_puts_its_samples_in_the_report(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_lagging=LAGGING_TEST)
    result = pytester.runpytest_subprocess("--pgstandby-backend=local", "-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "E   *ReplicationLagError: assert_replication_lag failed for *",
            "*measured lag > * s (max_seconds=0.5)*",
            "*- pgstandby replication lag -*",
            "* samples over * s*the primary's LSN is pg_current_wal_lsn()*",
            "   t (s)      primary LSN   standby replay    byte lag",
            "   0.0?? *",
            "picture: *replication-lag.png",
        ]
    )
    text = result.stdout.str()
    section = text.split("pgstandby replication lag", 1)[1]
    rows = [line.split() for line in section.splitlines() if re.match(r"^ +\d+\.\d{3} ", line)]
    assert len(rows) >= 3, section
    # the standby was frozen: its replay LSN (as the primary's walsender last heard it)
    # stayed behind the marker the check wrote, so the byte lag never reached zero
    assert len({row[2] for row in rows}) == 1, section
    assert all(row[3] != "0" for row in rows[1:]), section
    png = Path(re.findall(r"picture: (\S+\.png)", text)[0])
    assert png.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert "replicator_password" not in text
