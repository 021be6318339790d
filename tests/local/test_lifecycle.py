"""Node control on real local servers: LSNs, stop/start/restart/kill, promote, cleanup."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import psycopg
import pytest

from pytest_pgstandby import (
    Settings,
    SetupFailedError,
    UnsafeDataDirError,
    WaitTimeoutError,
    start_cluster,
)
from pytest_pgstandby.backends.local import LocalBackend
from pytest_pgstandby.backends.sessions import processes_under, sweep_leftovers


@pytest.fixture
def fresh(pgstandby_settings: Settings):  # type: ignore[no-untyped-def]
    with start_cluster(pgstandby_settings, backend="local", standbys=1) as cluster:
        yield cluster


def test_lsn_kinds_and_catchup(fresh) -> None:  # type: ignore[no-untyped-def]
    primary, standby = fresh.primary, fresh.standby
    primary.execute("CREATE TABLE l AS SELECT generate_series(1, 1000) AS x")
    target = primary.wait_for_catchup(standby, mode="replay")
    assert primary.execute("SELECT %s::pg_lsn <= pg_current_wal_lsn()", [target]) == [(True,)]
    for kind in ("insert", "write", "flush"):
        assert "/" in (primary.lsn(kind) or "")
    for kind in ("receive", "replay"):
        assert standby.execute("SELECT %s::pg_lsn >= %s::pg_lsn", [standby.lsn(kind), target]) == [
            (True,)
        ]
    with pytest.raises(ValueError, match="only on a primary"):
        standby.lsn("insert")


def test_catchup_timeout_names_what_it_awaited(fresh) -> None:  # type: ignore[no-untyped-def]
    primary, standby = fresh.primary, fresh.standby
    replayed = standby.lsn("replay")
    with pytest.raises(WaitTimeoutError) as info:
        primary.wait_for_catchup(standby, target_lsn="FFFF/0", timeout=0.5)
    text = str(info.value)
    assert "timed out after 0.5s waiting for standby1 to replay up to FFFF/0 of primary" in text
    assert f"last observed: standby1 replay LSN {replayed}, target FFFF/0" in text
    standby.pause()  # freeze every process of the standby, the waits' backend too...
    try:
        started = time.monotonic()
        with pytest.raises(WaitTimeoutError) as info:
            primary.wait_for_catchup(standby, target_lsn="FFFF/0", timeout=0.5)
        # ...and the wait's query is cut off like a connection attempt (2 s at least)
        assert time.monotonic() - started < 5
    finally:
        standby.resume()
    text = str(info.value)  # it says the server stopped answering: the query was cut off,
    # or the held connection was gone and a new one timed out (psycopg's subclass)
    assert re.search(r"last observed: (OperationalError|ConnectionTimeout): ", text), text
    assert "log tail" in text
    primary.wait_for_catchup(standby)  # a new connection once it answers again


def test_a_reload_finds_no_error_in_the_configuration(fresh) -> None:  # type: ignore[no-untyped-def]
    # a setting given on the command line against another in postgresql.conf made every
    # reload log "contains errors", which then stood in every log tail of a failure
    for node in fresh.nodes:
        offset = node.log_offset()
        node.reload()
        node.wait_for_log("received SIGHUP", offset)
        assert node.execute("SELECT count(*) FROM pg_file_settings WHERE error IS NOT NULL") == [
            (0,)
        ]
        assert not node.log_contains("contains errors", offset), node.log()[-2000:]
        assert node.execute("SHOW dynamic_shared_memory_type") == [("mmap",)]


def test_stop_start_restart_and_kill(fresh) -> None:  # type: ignore[no-untyped-def]
    primary, standby = fresh.primary, fresh.standby
    standby.stop("fast")
    assert not standby.is_running()
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(standby.dsn, connect_timeout=2)
    primary.execute("CREATE TABLE while_down AS SELECT 42 AS x")
    standby.start()
    primary.wait_for_catchup(standby)
    assert standby.execute("SELECT x FROM while_down") == [(42,)]
    standby.restart()
    assert standby.is_in_recovery()
    standby.kill()
    assert not standby.is_running()
    standby.start()  # crash recovery, then streaming again
    primary.wait_for_catchup(standby)


def test_admin_runs_statements_on_the_kept_connection_across_a_restart(fresh) -> None:  # type: ignore[no-untyped-def]
    """``admin()``: pgstandby_db's CREATE/DROP DATABASE on the connection waits keep (a
    statement with rows or without; the same backend each time; a restart in between)."""
    primary = fresh.primary
    primary.admin("CREATE DATABASE by_admin")  # not in a transaction block: autocommit
    primary.admin("SELECT 1")  # rows are read and dropped
    backends = {primary.query_value("SELECT count(*) FROM pg_stat_activity "
                                    "WHERE application_name = 'pgstandby-wait'")}  # fmt: skip
    primary.admin("CREATE TABLE kept (x int)")
    assert backends == {1}, "one kept connection, not one per statement"
    primary.restart()  # the kept connection dies with the server: made anew, not raised
    primary.admin("DROP DATABASE by_admin")
    assert primary.execute("SELECT datname FROM pg_database WHERE datname = 'by_admin'") == []


def test_promote_turns_the_standby_into_a_primary(fresh) -> None:  # type: ignore[no-untyped-def]
    fresh.standby.promote()
    assert not fresh.standby.is_in_recovery()
    fresh.standby.execute("CREATE TABLE after_promote (x int)")
    assert not fresh.standby.file_exists("standby.signal")


def test_close_leaves_no_process_and_no_directory(pgstandby_settings: Settings) -> None:
    with start_cluster(pgstandby_settings, backend="local") as cluster:
        root = cluster.backend.root
        pids = [n.handle.proc.pid for n in cluster.nodes]
        assert processes_under(root), "servers should be running inside the harness root"
    assert not root.exists()
    assert processes_under(root) == []
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_standby_script_refuses_a_data_dir_outside_the_harness_root(
    tmp_path: Path, pgstandby_settings: Settings
) -> None:
    victim = tmp_path / "precious"
    victim.mkdir()
    (victim / "keep-me").write_text("data the harness did not create")
    backend = LocalBackend(pgstandby_settings.pg_bin)
    try:
        with pytest.raises(UnsafeDataDirError, match="outside this session's harness directory"):
            backend.create_standby("standby1", None, data_dir=victim)  # type: ignore[arg-type]
        sneaky = backend.root / ".." / tmp_path.name
        with pytest.raises(UnsafeDataDirError):
            backend.create_standby("standby1", None, data_dir=sneaky)  # type: ignore[arg-type]
    finally:
        backend.close()
    assert (victim / "keep-me").read_text() == "data the harness did not create"


def test_tmpdir_must_be_reachable_by_the_server_account(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Mode 0: root may still write it, but not the `postgres` account that runs servers
    # for root; an unprivileged user, who runs the servers itself, cannot even enter it.
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o000)
    monkeypatch.setenv("PGSTANDBY_TMPDIR", str(locked))
    try:
        with pytest.raises(SetupFailedError, match="cannot be reached by the account") as info:
            LocalBackend()
        assert "Fix: set PGSTANDBY_TMPDIR" in str(info.value)
    finally:
        locked.chmod(0o700)
    assert list(locked.iterdir()) == [], "nothing may be left in the refused directory"


def test_missing_tmpdir_is_refused_naming_the_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PGSTANDBY_TMPDIR", str(tmp_path / "nowhere"))
    with pytest.raises(SetupFailedError, match=r"does not exist.*Fix: set PGSTANDBY_TMPDIR"):
        LocalBackend()
    assert not (tmp_path / "nowhere").exists()


def test_keep_on_failure_keeps_a_failed_with_block_and_the_next_run_sweeps_it(
    pytester: pytest.Pytester, pgstandby_settings: Settings, tmp_path: Path
) -> None:
    base = Path(tempfile.mkdtemp(prefix="keep-test-"))  # every account can traverse it
    base.chmod(0o755)
    record = tmp_path / "root"
    script = textwrap.dedent(
        f"""
        import pathlib, sys
        from pytest_pgstandby import start_cluster
        try:
            with start_cluster(backend="local", keep="on-failure",
                               pg_bin={pgstandby_settings.pg_bin!r}) as cluster:
                pathlib.Path({str(record)!r}).write_text(str(cluster.backend.root))
                raise RuntimeError("the body failed")
        except RuntimeError:
            sys.exit(3)
        """
    )
    env = {**os.environ, "PGSTANDBY_TMPDIR": str(base)}
    try:
        child = subprocess.run([sys.executable, "-c", script], env=env, timeout=120)
        assert child.returncode == 3
        root = Path(record.read_text())
        assert (root / "standby1" / "standby.signal").exists(), "kept for inspection"
        assert processes_under(root), "kept servers keep running after their owner exited"
        # the next pytest run that starts a local cluster sweeps what the dead one kept
        pytester.makepyfile("def test_one(pgstandby_cluster): pass")
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("PGSTANDBY_TMPDIR", str(base))
            result = pytester.runpytest_subprocess("--pgstandby-backend=local")
        result.assert_outcomes(passed=1)
        assert not root.exists()
        assert processes_under(root) == []
    finally:
        sweep_leftovers(base)
        shutil.rmtree(base, ignore_errors=True)


def test_standby_script_refuses_the_running_primarys_data_dir(
    pgstandby_settings: Settings,
) -> None:
    backend = LocalBackend(pgstandby_settings.pg_bin)
    try:
        primary = backend.create_primary("primary")
        marker = Path(primary.data_dir) / "PG_VERSION"
        for target, holds in (
            (Path(primary.data_dir), "primary's data"),
            (Path(primary.data_dir) / "base", "primary's data"),  # lies in it
            (backend.socket_dir, "sockets"),
        ):
            with pytest.raises(UnsafeDataDirError, match=f"it holds {holds}"):
                backend.create_standby("standby1", primary, data_dir=target)
        assert marker.exists() and primary.is_running()
    finally:
        backend.close()


def test_no_handle_or_node_repr_shows_a_password(fresh) -> None:  # type: ignore[no-untyped-def]
    """Issue 20 #9: `assert standby.handle.port == 0` printed the handle's dataclass repr,
    its scripts' environment with POSTGRES_REPLICATION_PASSWORD, to the terminal and the
    JUnit XML."""
    secrets = [fresh.backend.replication_password, fresh.backend.superuser_password]
    for node in fresh.nodes:
        for shown in (repr(node), repr(node.handle), repr(node.handle.credentials)):
            assert not any(secret and secret in shown for secret in secrets), shown
        assert node.name in repr(node.handle) and "password=********" in repr(node.handle)
