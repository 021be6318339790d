"""Small helpers shared by test modules (not fixtures)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from pytest_pgstandby._wait import poll_until


def wait_for_child_file(path: Path, proc: subprocess.Popen[bytes], timeout: float = 60) -> str:
    """Wait (bounded) until a child process writes ``path``; give up if it dies."""
    poll_until(
        path.exists,
        what=f"the child process to write {path}",
        timeout=timeout,
        abort=lambda: None if proc.poll() is None else f"the child exited ({proc.returncode})",
    )
    return path.read_text()
