"""Nothing is left after any end of pytest: a pytest holding a cluster is killed (SIGKILL,
or SIGTERM as a CI cancel sends it) and, with no further pytest run, none of its servers,
containers, networks, directories or port marks is left within 10 s. SIGTERM tears down
as Ctrl-C does; after SIGKILL the session's reaper does it. Used by tests/local and
tests/docker."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from pytest_pgstandby._wait import poll_until
from tests.helpers import wait_for_child_file

LEFTOVER_BOUND = 10.0

HOLDING_TEST = """
import os, pathlib, signal

def test_holds_a_cluster(pgstandby_cluster):
    pgstandby_cluster.primary.execute("SELECT 1")
    pathlib.Path(os.environ["PGSTANDBY_TEST_READY"]).write_text(str(os.getpid()))
    signal.pause()  # held until the outer test signals this pytest
"""


def session_base() -> Path:
    """A PGSTANDBY_TMPDIR of the test's own (traversable by the servers' account)."""
    base = Path(tempfile.mkdtemp(prefix="pgstandby-ends-test-", dir="/tmp"))
    os.chmod(base, 0o755)
    return base


def kill_holding_pytest(
    tmp_path: Path, args: list[str], sig: signal.Signals, env: dict[str, str]
) -> tuple[int, float]:
    """Start a pytest that holds a cluster, wait until it does, send ``sig``; returns the
    pytest's pid and when the signal was sent (time.monotonic())."""
    test = tmp_path / "test_holds.py"
    test.write_text(HOLDING_TEST)
    ready = tmp_path / "ready"
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", str(test), *args],
        cwd=tmp_path,
        env={**os.environ, **env, "PGSTANDBY_TEST_READY": str(ready)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_child_file(ready, proc, timeout=120)
    except BaseException:
        proc.kill()
        raise
    os.kill(proc.pid, sig)
    killed_at = time.monotonic()
    proc.wait(timeout=120)
    return proc.pid, killed_at


def wait_for_none_left(leftovers: Callable[[], list[str]], killed_at: float, what: str) -> float:
    poll_until(
        lambda: not leftovers(),
        what=f"no {what} left after the kill",
        timeout=LEFTOVER_BOUND,
        interval=0.1,
        log=lambda: f"still there: {leftovers()}",
    )
    return time.monotonic() - killed_at
