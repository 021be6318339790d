"""Small helpers shared by test modules (not fixtures)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from pytest_pgstandby import (
    Node,
    assert_primary_conninfo,
    assert_read_only,
    assert_replication_lag,
    assert_standby_signal,
    assert_streaming,
    wait_for_catchup,
)
from pytest_pgstandby._wait import poll_until


def passes_every_helper(primary: Node, standby: Node, table: str) -> None:
    """Every assertion helper passes on the pair, and a row written on the primary as
    ``table`` is replayed on the standby."""
    assert_standby_signal(standby)
    assert_primary_conninfo(standby, primary)
    assert_read_only(standby)
    assert_streaming(primary, standby)
    primary.execute(f"CREATE TABLE {table} AS SELECT 42 AS x")
    wait_for_catchup(primary, standby)
    assert standby.execute(f"SELECT x FROM {table}") == [(42,)]
    assert_replication_lag(primary, standby, max_bytes=0)


def wait_for_child_file(path: Path, proc: subprocess.Popen[bytes], timeout: float = 60) -> str:
    """Wait (bounded) until a child process has written ``path`` (not merely created it:
    write_text opens, then writes); give up if it dies."""
    return poll_until(
        lambda: path.exists() and path.read_text(),
        what=f"the child process to write {path}",
        timeout=timeout,
        abort=lambda: None if proc.poll() is None else f"the child exited ({proc.returncode})",
    )


def dead_pid() -> str:
    """The pid of a process that has exited: an owner mark naming it names no owner."""
    return subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


def reapers_of(pid: int) -> list[int]:
    """The reaper processes a process started (tests/ends.py shows them at work)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except (OSError, NotADirectoryError):
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid and b"backends.reaper" in cmdline:
            found.append(int(entry.name))
    return found


# A downstream project's test file: fixtures only, no import of the harness. Run against
# servers the harness did not start (--pgstandby-primary-dsn ...), it must pass unchanged.
EXTERNAL_DOWNSTREAM_TEST = """
import pytest


def test_replicates(pgstandby_primary, pgstandby_standby):
    pgstandby_primary.execute("CREATE TABLE IF NOT EXISTS downstream (x int)")
    pgstandby_primary.execute("INSERT INTO downstream VALUES (1)")
    pgstandby_primary.wait_for_catchup(pgstandby_standby)
    assert pgstandby_standby.execute("SELECT count(*) >= 1 FROM downstream") == [(True,)]


def test_the_standby_is_a_standby_by_its_files_too(pgstandby_standby):
    assert pgstandby_standby.is_in_recovery()
    assert pgstandby_standby.file_exists("standby.signal")
    assert "primary_conninfo" in pgstandby_standby.read_file("postgresql.auto.conf")


def test_the_cluster_is_the_pair_given(pgstandby_cluster):
    assert [n.name for n in pgstandby_cluster.nodes] == ["primary", "standby1"]
    assert not any(n.owned for n in pgstandby_cluster.nodes)


def test_promote_and_stop_are_refused(pgstandby_primary, pgstandby_standby):
    with pytest.raises(Exception, match="refusing to promote standby standby1") as info:
        pgstandby_standby.promote()
    assert "never starts, stops, kills, promotes" in str(info.value)
    with pytest.raises(Exception, match="refusing to stop"):
        pgstandby_primary.stop()
    assert pgstandby_standby.is_in_recovery()
"""
