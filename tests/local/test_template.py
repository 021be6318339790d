"""The initdb template: made once per binaries, version, options and account, even when
several processes (pytest-xdist workers) ask for it at the same moment."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from pytest_pgstandby import Settings, binaries
from pytest_pgstandby._wait import poll_until
from pytest_pgstandby.backends.accounts import binaries_for, run_account
from pytest_pgstandby.backends.sessions import (
    STAGING,
    leftovers,
    orphan_segments,
    processes_under,
)
from pytest_pgstandby.backends.template import PREFIX
from tests.ends import session_base, wait_for_none_left


def test_two_processes_asking_at_once_make_one_template(pgstandby_settings: Settings) -> None:
    base = Path(tempfile.mkdtemp(prefix="template-test-"))  # every account can traverse it
    base.chmod(0o755)
    bins = binaries_for(binaries.find(pgstandby_settings.pg_bin), run_account())
    script = textwrap.dedent(
        f"""
        import logging, sys
        from pathlib import Path
        from pytest_pgstandby.binaries import Binaries
        from pytest_pgstandby.backends.accounts import run_account
        from pytest_pgstandby.backends.template import template
        logging.basicConfig(level=logging.INFO, stream=sys.stderr)
        bins = Binaries(Path({str(bins.bindir)!r}), {bins.version!r}, "test")
        env = {{"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}}
        print(template(bins, run_account(), Path({str(base)!r}), env, 120))
        """
    )
    try:
        children = [
            subprocess.Popen(
                [sys.executable, "-c", script],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(2)
        ]
        results = [child.communicate(timeout=120) for child in children]
        assert [child.returncode for child in children] == [0, 0], results
        paths = {out.strip() for out, _ in results}
        assert len(paths) == 1, paths
        made = Path(paths.pop())
        assert (made / "data" / "PG_VERSION").read_text().strip() == str(bins.major)
        logs = "".join(err for _, err in results)
        assert logs.count("made the initdb template") == 1, logs
        assert [p.name for p in base.iterdir() if p.name.startswith(PREFIX)] == [made.name]
        assert not [p for p in base.iterdir() if "staging" in p.name]
    finally:
        subprocess.run(["rm", "-rf", str(base)], check=False)
        shutil.rmtree(base, ignore_errors=True)
    assert not os.path.exists(base)


def test_a_build_killed_during_initdb_leaves_no_staging_directory_or_shared_memory(
    pgstandby_settings: Settings,
) -> None:
    """Issue 20 #5: SIGKILL of the process group while initdb's standalone backend runs
    left the staging directory (23 MB, never swept) and its POSIX shared memory segments
    in /dev/shm. The reaper removes both within 10 s, with no next run."""
    base = session_base()
    uid = run_account().uid
    since = time.time() - 1
    script = "from pytest_pgstandby import start_cluster\nwith start_cluster(backend='local'): pass"
    env = {**os.environ, "PGSTANDBY_TMPDIR": str(base)}
    if pgstandby_settings.pg_bin:
        env["PGSTANDBY_PG_BIN"] = pgstandby_settings.pg_bin
    proc = subprocess.Popen(
        [sys.executable, "-c", script], env=env, start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:

        def backend_running() -> bool:
            """initdb's standalone backend runs in the staging directory, holding the
            shared memory segment it made (a shared memory segment of the account's)."""
            stagings = list(base.glob(f"*/.{PREFIX}*{STAGING}*"))
            made = [
                s
                for s in Path("/dev/shm").glob("PostgreSQL.*")
                if s.stat().st_uid == uid and s.stat().st_ctime >= since
            ]
            return bool(stagings and made and processes_under(stagings[0]))

        poll_until(backend_running, what="initdb's backend to run", timeout=60, interval=0.002)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        killed_at = time.monotonic()
        took = wait_for_none_left(
            lambda: leftovers(base) + [str(s) for s in orphan_segments(uid, since)],
            killed_at,
            "staging directory or shared memory segment",
        )
        print(f"initdb killed: nothing left {took:.2f} s after the kill")
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        shutil.rmtree(base, ignore_errors=True)
