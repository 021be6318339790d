"""A session cluster that heals, on the local backend (tests/healing_suite.py)."""

from __future__ import annotations

import pytest

from tests.healing_suite import run


def test_a_broken_session_cluster_is_restored_for_the_next_test(
    pytester: pytest.Pytester,
) -> None:
    run(pytester, "--pgstandby-backend=local")


def test_in_an_xdist_worker_it_is_restored_from_the_runs_snapshot(
    pytester: pytest.Pytester,
) -> None:
    """A worker's session cluster is a copy of the run's snapshot of its shape (or its
    build), so a cluster that cannot be healed is a new copy, not a new build."""
    run(pytester, "--pgstandby-backend=local", "-n", "1", remade="restored from the run's snapshot")


def test_without_xdist_it_is_a_copy_where_the_session_has_a_snapshot_of_its_shape(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeconftest(
        "from pytest_pgstandby import factories\nfresh = factories.cluster(scope='function')\n"
    )
    pytester.makepyfile(
        """
        def test_0_uses_a_fresh_pair(fresh):  # its first build is snapshotted
            assert fresh.standby.is_in_recovery()

        def test_1_promotes(pgstandby_standby):
            pgstandby_standby.promote()

        def test_2_streams(pgstandby_cluster):
            assert pgstandby_cluster.standby.is_in_recovery()
            assert "restored from the snapshot" in pgstandby_cluster.standby.setup_output()

        def test_3_uses_a_fresh_pair_again(fresh):  # why test_0's build was snapshotted
            assert "restored from the snapshot" in fresh.standby.setup_output()
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--pgstandby-backend=local")
    result.assert_outcomes(passed=4)
    result.stdout.re_match_lines(
        [
            r"pgstandby: restored: .*test_1_promotes \(promote standby1\); restored from the "
            r"session's snapshot in \d+\.\d s"
        ]
    )
