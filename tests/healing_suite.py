"""A session cluster shared by an application's tests, one of which breaks it (issue 21):
the next test gets a streaming pair again, and its report says which test changed the
cluster and what was done. Run through pytester by tests/plugin/test_healing.py (local)
and tests/docker/test_healing_docker.py."""

from __future__ import annotations

import re

import pytest

TESTS = """
def test_1_promotes_the_standby(pgstandby_standby):
    pgstandby_standby.promote()


def test_2_gets_a_streaming_pair(pgstandby_standby, pgstandby_db):
    pgstandby_db.execute("CREATE TABLE t AS SELECT 1 AS x")
    pgstandby_db.wait_replayed()
    assert pgstandby_db.execute("SELECT x FROM t", node=pgstandby_standby) == [(1,)]
    assert pgstandby_standby.is_in_recovery()
    assert 0, "fail, to show the report"


def test_3_pauses_and_partitions(pgstandby_cluster):
    pgstandby_cluster.standby.partition()
    pgstandby_cluster.standby.pause()


def test_4_streams_again(pgstandby_cluster):
    pgstandby_cluster.primary.execute("CREATE TABLE IF NOT EXISTS u AS SELECT 1 AS y")
    pgstandby_cluster.primary.wait_for_catchup(pgstandby_cluster.standby, timeout=10)


def test_5_promotes_by_sql_behind_the_harness(pgstandby_standby):
    pgstandby_standby.execute("SELECT pg_promote()")
    pgstandby_standby.poll_query_until("SELECT pg_is_in_recovery()", False)


def test_6_reads_only(pgstandby_primary, pgstandby_standby):
    assert not pgstandby_primary.is_in_recovery() and pgstandby_standby.is_in_recovery()
"""


def run(pytester: pytest.Pytester, *args: str, remade: str = "rebuilt by the scripts") -> str:
    """``remade``: how a cluster that cannot be healed is made again."""
    pytester.makepyfile(test_app=TESTS)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", *args)
    result.assert_outcomes(passed=5, failed=1)
    out = result.stdout.str()
    changed = "pgstandby_cluster was changed by test_app.py::"
    # the next test's report (shown: it fails) names the test and what was done
    report = out[out.index("_ test_2_gets_a_streaming_pair _") :]
    assert re.search(
        rf"{changed}test_1_promotes_the_standby \(promote standby1\); {remade} "
        r"in \d+\.\d s before this test",
        report,
    ), out
    # and the summary lists every restore, after whichever test
    assert re.search(
        rf"pgstandby: restored: {changed}test_3_pauses_and_partitions \(partition standby1, "
        r"pause standby1\); healed \(resume standby1, heal standby1\)",
        out,
    ), out
    assert re.search(
        rf"pgstandby: restored: {changed}test_5_promotes_by_sql_behind_the_harness "
        rf"\(standby1 is a primary\); {remade}",
        out,
    ), out
    assert out.count("pgstandby: restored:") == 3, out  # test 2, 4 and 6 changed nothing
    return out
