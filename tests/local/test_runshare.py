"""pytest-xdist workers of one run share one build per cluster shape (runshare.py): the
first worker runs the scripts and snapshots the result, every other cluster of that shape
in any worker is a copy; the controller removes the shared directory at the end, and a
killed controller's directory is swept by the next session."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from pytest_pgstandby.backends.local import LocalBackend
from pytest_pgstandby.backends.sessions import OWNER_MARK, leftovers
from pytest_pgstandby.runshare import RUN_PREFIX
from tests.ends import session_base
from tests.helpers import dead_pid

RESTORED = "restored from the snapshot"


@pytest.fixture
def base(monkeypatch: pytest.MonkeyPatch) -> object:
    made = session_base()
    monkeypatch.setenv("PGSTANDBY_TMPDIR", str(made))
    yield made
    shutil.rmtree(made, ignore_errors=True)


def test_workers_share_one_build_per_shape_and_the_controller_removes_it(
    pytester: pytest.Pytester, tmp_path: Path, base: Path
) -> None:
    record = tmp_path / "record.jsonl"
    pytester.makeini("[pytest]\npgstandby_backend = local\n")
    pytester.makeconftest(
        f"""
        import json, os
        from pytest_pgstandby import factories

        fresh = factories.cluster(scope="function")

        def note(kind, cluster):
            with open({str(record)!r}, "a") as out:
                out.write(json.dumps({{
                    "worker": os.environ["PYTEST_XDIST_WORKER"],
                    "kind": kind,
                    "root": str(cluster.backend.root),
                    "setup": cluster.standby.setup_output(),
                }}) + "\\n")
        """
    )
    pytester.makepyfile(
        """
        import pytest
        from conftest import note

        @pytest.mark.parametrize("i", range(4))
        def test_session(pgstandby_cluster, pgstandby_db, i):
            note("session", pgstandby_cluster)
            pgstandby_db.execute("CREATE TABLE t AS SELECT 1 AS n")
            pgstandby_db.wait_replayed()
            standby = pgstandby_cluster.standby
            assert pgstandby_db.execute("SELECT n FROM t", node=standby) == [(1,)]

        @pytest.mark.parametrize("i", range(4))
        def test_fresh(fresh, i):
            note("fresh", fresh)
            fresh.primary.execute("CREATE TABLE t AS SELECT 1 AS n")
            fresh.primary.wait_for_catchup(fresh.standby)
            assert fresh.standby.execute("SELECT n FROM t") == [(1,)]
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-n", "2")
    result.assert_outcomes(passed=8)
    seen = [json.loads(line) for line in record.read_text().splitlines()]
    assert {s["worker"] for s in seen} == {"gw0", "gw1"}
    clusters = {s["root"]: s for s in seen}  # a session cluster is seen by several tests
    built = [s for s in clusters.values() if RESTORED not in s["setup"]]
    # the same shape for the session's and the function-scoped clusters: one build
    assert len(built) == 1, [(s["worker"], s["kind"]) for s in built]
    assert "pg_basebackup" in built[0]["setup"], "the build ran the documented script"
    sessions = {(s["worker"], s["root"]) for s in seen if s["kind"] == "session"}
    assert len(sessions) == 2, "each worker its own session cluster (a copy, or the build)"
    assert not [p.name for p in base.rglob(RUN_PREFIX + "*")], "the controller removed it"
    assert leftovers(base) == []


def test_a_killed_controllers_run_directory_is_swept_by_the_next_session(base: Path) -> None:
    dead = dead_pid()
    backend = LocalBackend()  # makes the account's harness directory, sweeping it first
    run = backend.base / f"{RUN_PREFIX}0123abcd"
    (run / "0123").mkdir(parents=True)
    (run / OWNER_MARK).write_text(f"{dead}\n")
    live = backend.base / f"{RUN_PREFIX}4567ef"  # a run whose controller still runs
    live.mkdir()
    (live / OWNER_MARK).write_text(f"{os.getpid()}\n")
    backend.close()
    second = LocalBackend()
    try:
        assert not run.exists(), "a dead controller's run directory is swept"
        assert live.exists(), "a live one is left alone"
    finally:
        second.close()
        shutil.rmtree(live)
