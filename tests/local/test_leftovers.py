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
from pytest_pgstandby.backends.ports import PORT_MARK
from pytest_pgstandby.backends.sessions import STAGING, processes_under
from pytest_pgstandby.backends.template import template_dir
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
        marks = list(root.parent.glob(PORT_MARK + "*"))
        assert marks, "the killed session's port reservation was left"
        LocalBackend(base=base).close()  # the next start sweeps
        assert not root.exists()
        assert [m for m in marks if m.exists()] == [], "issue 20 #5: its port marks too"
        assert processes_under(root) == []
        assert (foreign / "data").read_text() == "someone else's"
    finally:
        if proc.poll() is None:
            proc.kill()
        shutil.rmtree(base, ignore_errors=True)


def test_a_killed_template_builds_staging_directory_goes_with_the_next_build() -> None:
    """Issue 20 #5: a `.pgstandby-template-staging-*` directory of a build killed with its
    reaper was never swept. The next build of that template (it holds the template's lock,
    so no other build runs) removes it."""
    base = Path(tempfile.mkdtemp(prefix="staging-test-"))
    os.chmod(base, 0o755)
    try:
        backend = LocalBackend(base=base)
        made = template_dir(backend.bins, backend.account, backend.base)
        stale = backend.base / f".{made.name}{STAGING}killed"
        (stale / "data").mkdir(parents=True)
        (stale / "data" / "PG_VERSION").write_text("15\n")
        backend.create_primary("primary")  # the template is missing: it is made now
        assert made.is_dir() and not stale.exists()
        backend.close()
    finally:
        shutil.rmtree(base, ignore_errors=True)
