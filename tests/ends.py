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


# and a function-scoped cluster beside it: a snapshot of its shape (-n 0), or the xdist
# run's shared directory (-n 2)
HOLDING_FRESH_TEST = """
import os, pathlib, signal
from pytest_pgstandby import factories

fresh = factories.cluster(scope="function")

def test_0_a_fresh_pair(fresh):  # a later test asks for it too: its build is snapshotted
    fresh.primary.execute("SELECT 1")

def test_holds_a_cluster_and_a_fresh_one(pgstandby_cluster, fresh):
    fresh.primary.execute("SELECT 1")
    pathlib.Path(os.environ["PGSTANDBY_TEST_READY"]).write_text(str(os.getpid()))
    signal.pause()
"""


def session_base() -> Path:
    """A PGSTANDBY_TMPDIR of the test's own (traversable by the servers' account)."""
    base = Path(tempfile.mkdtemp(prefix="pgstandby-ends-test-", dir="/tmp"))
    os.chmod(base, 0o755)
    return base


def kill_holding_pytest(
    tmp_path: Path,
    args: list[str],
    sig: signal.Signals,
    env: dict[str, str],
    test_text: str = HOLDING_TEST,
    group: bool = False,
) -> tuple[int, float]:
    """Start a pytest that holds a cluster, wait until it does, send ``sig`` (to its whole
    process group with ``group``: xdist workers, initdb and all, as a CI job's end does);
    returns the pid of the process that ran the test (pytest's, or its xdist worker's)
    and when the signal was sent (time.monotonic())."""
    test = tmp_path / "test_holds.py"
    test.write_text(test_text)
    ready = tmp_path / "ready"
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", str(test), *args],
        cwd=tmp_path,
        env={**os.environ, **env, "PGSTANDBY_TEST_READY": str(ready)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=group,
    )
    try:
        holder = int(wait_for_child_file(ready, proc, timeout=120))  # an xdist worker's
    except BaseException:
        proc.kill()
        raise
    if group:
        os.killpg(proc.pid, sig)
    else:
        os.kill(proc.pid, sig)
    killed_at = time.monotonic()
    proc.wait(timeout=120)
    return holder, killed_at


def wait_for_none_left(leftovers: Callable[[], list[str]], killed_at: float, what: str) -> float:
    poll_until(
        lambda: not leftovers(),
        what=f"no {what} left after the kill",
        timeout=LEFTOVER_BOUND,
        interval=0.1,
        log=lambda: f"still there: {leftovers()}",
    )
    return time.monotonic() - killed_at
