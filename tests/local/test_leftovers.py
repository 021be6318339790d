"""What a pytest killed with SIGKILL leaves behind is removed by the next run, and only
what carries our owner mark is ever touched."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

from pytest_pgstandby.backends.local import OWNER_MARK, LocalBackend
from pytest_pgstandby.backends.sessions import processes_under
from tests.helpers import reapers_of, wait_for_child_file


def test_leftovers_of_a_killed_process_are_swept(tmp_path: Path) -> None:
    # pytest's tmp_path is 0700 root's: the server account could not reach it
    base = Path(tempfile.mkdtemp(prefix="sweep-test-"))
    os.chmod(base, 0o755)
    foreign = base / "pgstandby-not-ours"  # same prefix, no owner mark: must survive
    foreign.mkdir()
    (foreign / "data").write_text("someone else's")
    ready = tmp_path / "ready"
    child = textwrap.dedent(
        f"""
        import pathlib, time
        from pytest_pgstandby.backends.local import LocalBackend
        backend = LocalBackend(base=pathlib.Path({str(base)!r}))
        backend.create_primary("primary")
        pathlib.Path({str(ready)!r}).write_text(str(backend.root))
        time.sleep(600)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", child])
    try:
        root = Path(wait_for_child_file(ready, proc))
        # the sweep is the fallback for when the reaper is gone too (an OOM kill of both,
        # a container torn down): kill it first, or it would clean up at once
        for reaper in reapers_of(proc.pid):
            os.kill(reaper, signal.SIGKILL)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        assert (root / OWNER_MARK).exists() and processes_under(root), "nothing was left?"
        LocalBackend(base=base).close()  # the next start sweeps
        assert not root.exists()
        assert processes_under(root) == []
        assert (foreign / "data").read_text() == "someone else's"
    finally:
        if proc.poll() is None:
            proc.kill()
        shutil.rmtree(base, ignore_errors=True)
