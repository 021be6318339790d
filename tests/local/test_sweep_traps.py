"""The sweep of dead sessions' directories touches only what it can prove it made, even
when run as root: a planted ``pgstandby-*`` symlink, a marked directory of another
account, and a directory of ours holding another account's file are left alone, and no
process of another user is signalled. A real leftover of ours, beside them, is removed.

Another account is needed to plant the traps: these run as root (CI does)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_pgstandby.backends.sessions import OWNER_MARK, sweep_leftovers

OTHER = "nobody"


@pytest.fixture
def base() -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip("planting another account's files and processes needs root (CI runs as root)")
    made = Path(tempfile.mkdtemp(prefix="sweep-traps-", dir="/tmp"))
    os.chmod(made, 0o755)
    yield made
    shutil.rmtree(made, ignore_errors=True)


def dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    return int(subprocess.run(["sh", "-c", "echo $$"], capture_output=True).stdout)


def marked_dir(path: Path, owner_uid: int) -> Path:
    path.mkdir()
    (path / OWNER_MARK).write_text(f"{dead_pid()}\n")
    os.chown(path, owner_uid, -1)
    os.chown(path / OWNER_MARK, owner_uid, -1)
    return path


def others_process_in(directory: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        ["sleep", "300"], cwd=directory, user=OTHER, group="nogroup", extra_groups=[]
    )


def test_nothing_outside_what_is_provably_ours_is_signalled_or_removed(base: Path) -> None:
    nobody = int(subprocess.run(["id", "-u", OTHER], capture_output=True).stdout)
    elsewhere = Path(tempfile.mkdtemp(prefix="sweep-target-", dir="/tmp"))
    os.chmod(elsewhere, 0o755)
    processes = []
    try:
        # 1. a symlink with our prefix to a marked directory where another user works
        target = marked_dir(elsewhere / "work", nobody)
        (target / "their-file").write_text("theirs")
        (base / "pgstandby-symlink").symlink_to(target)
        processes.append(others_process_in(target))
        # 2. a marked directory of another account, with a dead pid and its process
        theirs = marked_dir(base / "pgstandby-theirs", nobody)
        processes.append(others_process_in(theirs))
        # 3. a marked directory of ours with another account's file inside
        mixed = marked_dir(base / "pgstandby-mixed", 0)
        (mixed / "their-file").write_text("theirs")
        os.chown(mixed / "their-file", nobody, -1)
        # the control: a real leftover of ours, which must go
        ours = marked_dir(base / "pgstandby-ours", 0)
        (ours / "data").write_text("ours")

        removed = sweep_leftovers(base, {0})

        assert removed == [ours] and not ours.exists()
        assert all(p.poll() is None for p in processes), "another user's process was signalled"
        assert (target / "their-file").read_text() == "theirs"
        assert (base / "pgstandby-symlink").is_symlink()
        assert (theirs / OWNER_MARK).exists()
        assert (mixed / "their-file").read_text() == "theirs"
    finally:
        for proc in processes:
            proc.kill()
            proc.wait()
        shutil.rmtree(elsewhere, ignore_errors=True)
