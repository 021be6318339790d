"""Nothing of a local session is left after any end of pytest (tests/ends.py)."""

from __future__ import annotations

import shutil
import signal
from pathlib import Path

import pytest

from pytest_pgstandby.backends.sessions import leftovers
from tests.ends import (
    HOLDING_FRESH_TEST,
    kill_holding_pytest,
    session_base,
    wait_for_none_left,
)


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_a_killed_pytest_leaves_no_server_directory_or_port_mark(
    tmp_path: Path, sig: signal.Signals
) -> None:
    base = session_base()
    try:
        env = {"PGSTANDBY_TMPDIR": str(base)}
        _, killed_at = kill_holding_pytest(tmp_path, ["--pgstandby-backend=local"], sig, env)
        took = wait_for_none_left(lambda: leftovers(base), killed_at, "local leftovers")
        print(f"{sig.name}: nothing left {took:.2f} s after the kill")
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.mark.parametrize("workers", ["0", "2"], ids=["-n 0", "-n 2"])
def test_a_killed_process_group_leaves_no_snapshot_or_run_directory(
    tmp_path: Path, workers: str
) -> None:
    """Issue 20 #5: SIGKILL of pytest's whole process group (its xdist workers too) with a
    session cluster and a function-scoped one: the snapshot (-n 0) or the run's shared
    directory (-n 2), the sessions, their ledgers and port marks are gone within 10 s."""
    base = session_base()
    try:
        env = {"PGSTANDBY_TMPDIR": str(base)}
        args = ["--pgstandby-backend=local", "-n", workers]
        _, killed_at = kill_holding_pytest(
            tmp_path, args, signal.SIGKILL, env, test_text=HOLDING_FRESH_TEST, group=True
        )
        took = wait_for_none_left(lambda: leftovers(base), killed_at, "local leftovers")
        print(f"-n {workers}, group SIGKILL: nothing left {took:.2f} s after the kill")
    finally:
        shutil.rmtree(base, ignore_errors=True)
