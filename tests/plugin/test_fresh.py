"""Function-scoped factory clusters: copies of a per-session snapshot by default on the
local backend, the scripts every time with fresh="rebuild"."""

from __future__ import annotations

import pytest

TESTS = """
    import pytest

    RESTORED = "[pytest-pgstandby] restored from the snapshot"

    @pytest.mark.parametrize("round", range(3))
    def test_each_gets_its_own_pair(fresh, round):
        primary, standby = fresh.primary, fresh.standby
        # nothing from an earlier test's pair: each is a copy of the session's snapshot
        assert primary.query_value("SELECT to_regclass('written') IS NULL") is True
        primary.execute("CREATE TABLE written AS SELECT %s AS round" % round)
        primary.wait_for_catchup(standby)
        assert standby.execute("SELECT round FROM written") == [(round,)]
        out = standby.setup_output()
        assert out.count("Creating base backup...") == 1
        print("MODE", round, "restored" if RESTORED in out else "built")
"""


@pytest.mark.parametrize(
    ("fresh", "expected"),
    [
        ("auto", ["built", "restored", "restored"]),
        ("snapshot", ["built", "restored", "restored"]),
        ("rebuild", ["built", "built", "built"]),
    ],
)
def test_fresh_pairs_per_test(pytester: pytest.Pytester, fresh: str, expected: list[str]) -> None:
    pytester.makeconftest(
        f"""
        from pytest_pgstandby import factories

        fresh = factories.cluster(scope="function", backend="local", fresh={fresh!r})
        """
    )
    pytester.makepyfile(TESTS)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-s")
    result.assert_outcomes(passed=3)
    modes = [line.split("MODE ", 1)[1].split() for line in result.outlines if "MODE " in line]
    assert [m[1] for m in modes] == expected


def test_unknown_fresh_mode_is_refused_by_name(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_one():\n    pass\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--pgstandby-fresh", "copy")
    assert result.ret != 0
    result.stderr.fnmatch_lines(["*unknown fresh mode 'copy'*auto, snapshot, rebuild*"])


def test_a_synchronous_pair_restored_from_the_snapshot_waits_at_once(
    pytester: pytest.Pytester,
) -> None:
    """Issue 20, finding 14: the first wait on a restored synchronous pair reused a wait
    connection held from before the snapshot's clean stop (AdminShutdown). A connection
    the server closed since is made anew, and a snapshot closes them first."""
    pytester.makeconftest(
        """
        from pytest_pgstandby import factories

        sync = factories.cluster(
            scope="function", backend="local", standbys=1, synchronous="FIRST 1"
        )
        """
    )
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.parametrize("round", range(3))
        def test_commit_waits_for_the_standby(sync, round):
            sync.primary.execute("CREATE TABLE t AS SELECT 1 AS x")
            sync.primary.wait_for_catchup(sync.standby)
            assert sync.standby.execute("SELECT x FROM t") == [(1,)]
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=3)
