"""The plugin as a downstream project meets it: installed, found by its pytest11 entry
point, configured by its own conftest and command line, run in a subprocess."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from pytest_pgstandby.backends.accounts import run_account
from pytest_pgstandby.backends.sessions import processes_under, sweep_leftovers

DOWNSTREAM_TEST = """
import json, os

def test_replicates(pgstandby_cluster, pgstandby_primary, pgstandby_standby, record):
    pgstandby_primary.execute("CREATE TABLE IF NOT EXISTS d (x int)")
    pgstandby_primary.execute("INSERT INTO d VALUES (1)")
    pgstandby_primary.wait_for_catchup(pgstandby_standby)
    assert pgstandby_standby.execute("SELECT count(*) >= 1 FROM d") == [(True,)]
    assert pgstandby_standby.file_exists("standby.signal")
    record(pgstandby_cluster)

def test_standby_is_read_only(pgstandby_standby, record, pgstandby_cluster):
    assert pgstandby_standby.is_in_recovery()
    record(pgstandby_cluster)
"""

DOWNSTREAM_CONFTEST = """
import json, os, pytest

@pytest.fixture
def record():
    def _record(cluster):
        out = os.environ["PGSTANDBY_TEST_RECORD"]
        with open(out, "a") as f:
            f.write(json.dumps({
                "root": str(cluster.backend.root),
                "pids": [n.handle.proc.pid for n in cluster.nodes],
            }) + "\\n")
    return _record
"""


def _records(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_downstream_project_gets_fixtures_by_entry_point_alone(
    pytester: pytest.Pytester, tmp_path: Path
) -> None:
    record = tmp_path / "record.jsonl"
    pytester.makeconftest(DOWNSTREAM_CONFTEST)
    pytester.makepyfile(test_downstream=DOWNSTREAM_TEST)
    pytester.makeini("[pytest]\npgstandby_backend = local\n")
    os.environ["PGSTANDBY_TEST_RECORD"] = str(record)
    try:
        result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-n", "2", "-v")
    finally:
        del os.environ["PGSTANDBY_TEST_RECORD"]
    result.assert_outcomes(passed=2)
    seen = _records(record)
    assert len(seen) == 2
    for entry in seen:  # each xdist worker had its own session cluster, now gone
        root = Path(str(entry["root"]))
        assert not root.exists(), f"{root} was left behind"
        assert processes_under(root) == []
        for pid in entry["pids"]:  # type: ignore[attr-defined]
            with pytest.raises(ProcessLookupError):
                os.kill(pid, 0)


def test_header_names_the_binaries_and_the_backend(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_nothing(): pass")
    result = pytester.runpytest_subprocess("--pgstandby-backend=local")
    result.stdout.fnmatch_lines(
        ["pgstandby: backend=local*", "pgstandby: local binaries: PostgreSQL * from *"]
    )


FAILING_TEST_THAT_WRITES_ITS_PASSWORDS = """
import os
from psycopg.conninfo import conninfo_to_dict

def test_fails(pgstandby_cluster, pgstandby_primary):
    pgstandby_primary.execute("SELECT 1")
    with open(os.environ["PGSTANDBY_TEST_RECORD"], "w") as out:  # for the outer test
        out.write(pgstandby_cluster.backend.replication_password + "\\n")
        out.write(conninfo_to_dict(pgstandby_primary.dsn)["password"] + "\\n")
    assert False, "deliberate"
"""


@pytest.mark.parametrize("profile", ["documented", "hardened"])
def test_failing_test_report_carries_the_servers_logs_and_no_password(
    pytester: pytest.Pytester, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, profile: str
) -> None:
    record = tmp_path / "passwords"
    monkeypatch.setenv("PGSTANDBY_TEST_RECORD", str(record))
    pytester.makepyfile(FAILING_TEST_THAT_WRITES_ITS_PASSWORDS)
    result = pytester.runpytest_subprocess(
        "--pgstandby-backend=local", f"--pgstandby-profile={profile}", "--pgstandby-report=full"
    )
    result.assert_outcomes(failed=1)
    passwords = record.read_text().split()
    assert len(passwords) == 2 and all(len(p) >= 16 for p in passwords)
    for password in passwords:
        assert password not in result.stdout.str() + result.stderr.str()
    result.stdout.fnmatch_lines(
        [
            # the report names the server that ran, as it printed its version
            "*pgstandby servers*",
            "PostgreSQL [1-9]*.* on local (*)",
            "*pgstandby standby1 setup*",
            "*pg_basebackup: base backup completed*",
            "*pgstandby standby1 log*",
            "*database system is ready to accept read-only connections*",
        ]
    )
    assert "replicator_password" not in result.stdout.str()


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--pgstandby-backend=bogus"], "*unknown backend 'bogus'*Fix*auto, local, docker*"),
        (["--pgstandby-profile=paranoid"], "*unknown profile 'paranoid'*Fix*documented, hardened*"),
        (["--pgstandby-pg-bin=/nonexistent/bin"], "*not a directory*Fix*pg_config --bindir*"),
        (["--pgstandby-keep=sometimes"], "*unknown keep mode 'sometimes'*"),
        (["--pgstandby-standbys=0"], "*at least one standby*"),
        (["--pgstandby-timeout=nan"], "*must be a positive number of seconds*Fix*"),
        (["--pgstandby-timeout=inf"], "*must be a positive number of seconds*Fix*"),
        (["--pgstandby-timeout=0.001"], "*timeout=0.001: too short*Fix: --pgstandby-timeout 60*"),
        (["--pgstandby-primary-dsn=host=127.0.0.1"], "*without a standby*Fix*"),
        (["--pgstandby-standby-dsn=host=127.0.0.1"], "*without --pgstandby-primary-dsn*"),
        (
            [
                "--pgstandby-primary-dsn=host=127.0.0.1",
                "--pgstandby-standby-dsn=host=127.0.0.1 port=1",
                "--pgstandby-backend=local",
            ],
            "*names a running server, but backend=local*Fix*",
        ),
        (
            [
                "--pgstandby-primary-dsn=host=127.0.0.1",
                "--pgstandby-standby-dsn=host=127.0.0.1 port=1,host=127.0.0.1 port=2",
                "--pgstandby-standby-data-dir=/srv/one",
            ],
            "*1 standby-data-dir value(s) for 2 standby DSN(s)*Fix*",
        ),
    ],
)
def test_bad_options_are_usage_errors_that_name_the_fix(
    pytester: pytest.Pytester,
    args: list[str],
    expected: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    base = tmp_path / "sessions"  # where a local session would go: a file of the user's there
    base.mkdir()
    (base / "precious.txt").write_text("keep")
    monkeypatch.setenv("PGSTANDBY_TMPDIR", str(base))
    pytester.makepyfile("def test_nothing(): pass")
    result = pytester.runpytest_subprocess(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: pytest-pgstandby: " + expected])
    assert "Traceback" not in result.stderr.str()
    assert [p.name for p in base.iterdir()] == ["precious.txt"], "nothing made, nothing deleted"


def test_pg_bin_without_server_binaries_is_refused_and_nothing_is_deleted(
    pytester: pytest.Pytester, tmp_path: Path
) -> None:
    not_server = tmp_path / "bin"
    not_server.mkdir()
    (not_server / "psql").write_text("#!/bin/sh\n")
    (not_server / "precious.txt").write_text("keep")
    pytester.makepyfile("def test_nothing(): pass")
    result = pytester.runpytest_subprocess(f"--pgstandby-pg-bin={not_server}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*lacks initdb, postgres, pg_basebackup, pg_isready*Fix*"])
    assert sorted(p.name for p in not_server.iterdir()) == ["precious.txt", "psql"]


def test_env_variable_selects_the_backend(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PGSTANDBY_BACKEND", "nowhere")
    pytester.makepyfile("def test_nothing(): pass")
    result = pytester.runpytest_subprocess()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*unknown backend 'nowhere'*"])


def test_keep_on_failure_leaves_the_servers_for_inspection(
    pytester: pytest.Pytester, tmp_path: Path
) -> None:
    record = tmp_path / "root"
    pytester.makepyfile(
        f"""
        def test_passes(pgstandby_cluster):
            pass

        def test_fails(pgstandby_cluster):
            open({str(record)!r}, "w").write(str(pgstandby_cluster.backend.root))
            assert False
        """
    )
    result = pytester.runpytest_subprocess(
        "--pgstandby-backend=local", "--pgstandby-keep=on-failure"
    )
    result.assert_outcomes(passed=1, failed=1)
    root = Path(record.read_text())
    try:
        assert (root / "standby1" / "standby.signal").exists(), "kept for inspection"
        assert processes_under(root), "kept servers keep running"
    finally:  # what the harness kept, the next session sweeps; here we do it at once
        # as the next session would: this account and the servers' one
        sweep_leftovers(root.parent, {os.geteuid(), run_account().uid})
    assert not root.exists()


def test_factory_and_marker_shapes(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(
        """
        from pytest_pgstandby import factories

        chain = factories.cluster(scope="function", standbys=2, cascade=True, backend="local")
        fresh = factories.cluster(scope="function", backend="local")
        """
    )
    pytester.makepyfile(
        """
        import pytest

        def test_chain(chain):
            primary, s1, s2 = chain.nodes
            fed = "SELECT application_name FROM pg_stat_replication"
            assert primary.execute(fed) == [("standby1",)]
            assert s1.execute(fed) == [("standby2",)]

        @pytest.mark.pgstandby(standby=2)
        def test_misspelt_marker(fresh):
            pass

        @pytest.mark.pgstandby(standbys=2, synchronous="ANY 1", slots=True)
        def test_marker(fresh):
            rows = fresh.primary.execute(
                "SELECT application_name, sync_state FROM pg_stat_replication ORDER BY 1"
            )
            assert rows == [("standby1", "quorum"), ("standby2", "quorum")]
            assert fresh.primary.slot("standby2")["active"]
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(["*unknown keyword(s) standby. Known: *standbys*"])


def test_pgstandby_db_is_on_every_standby_before_the_test_and_gone_after(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeini("[pytest]\npgstandby_backend = local\npgstandby_standbys = 2\n")
    pytester.makepyfile(
        """
        seen = []
        left_open = []

        def _count(node, name):
            return node.query_value(
                "SELECT count(*) FROM pg_database WHERE datname = %s", [name]
            )

        def test_first(pgstandby_db, pgstandby_cluster):
            # already on every standby when the body starts: no wait here
            for node in pgstandby_cluster.nodes:
                assert _count(node, pgstandby_db.name) == 1, node.name
            pgstandby_db.execute("CREATE TABLE t AS SELECT 1 AS x")
            pgstandby_db.wait_replayed()
            standby = pgstandby_cluster.standbys[1]
            assert pgstandby_db.execute("SELECT x FROM t", node=standby) == [(1,)]
            left_open.append(pgstandby_db.connect(standby))  # the drop must close it
            seen.append(pgstandby_db.name)

        def test_second(pgstandby_db, pgstandby_cluster):
            assert pgstandby_db.name != seen[0]
            for node in pgstandby_cluster.nodes:  # the first one is gone everywhere
                assert _count(node, seen[0]) == 0, node.name
            assert left_open[0].closed or left_open[0].broken or _closed(left_open[0])
            assert pgstandby_db.execute("SELECT to_regclass('t')") == [(None,)]

        def _closed(conn):
            try:
                conn.execute("SELECT 1")
            except Exception:
                return True
            return False
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-p", "no:randomly")
    result.assert_outcomes(passed=2)


def test_a_marker_beats_the_factory_and_is_never_ignored(pytester: pytest.Pytester) -> None:
    """Issue 20 #8: a factory's argument silently beat the marker, and a marker on a test
    of the session cluster (standbys=3 gave 1) passed without a word."""
    pytester.makeconftest(
        """
        from pytest_pgstandby import factories

        one = factories.cluster(scope="function", standbys=1, backend="local")
        """
    )
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.pgstandby(standbys=2)
        def test_marker_over_factory(one):
            assert len(one.standbys) == 2

        @pytest.mark.pgstandby(standbys=3)
        def test_marker_on_the_session_cluster(pgstandby_primary):
            pass
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--pgstandby-backend=local")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*@pytest.mark.pgstandby(standbys=3) on test_*.py::test_marker_on_the_session_cluster"
            " shapes nothing*pgstandby_cluster (session-scoped)*Fix: give the test a "
            'factories.cluster(scope="function") fixture*'
        ]
    )
