"""The local backend's session directories: where they go (a memory filesystem when
there is one), the processes working in them, and the sweep of those a dead session left.

Only directories carrying the owner mark are ever touched; a symlink is never followed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import socket
import tempfile
from pathlib import Path

from .._wait import poll_until
from ..errors import WaitTimeoutError
from .base import pid_alive

log = logging.getLogger(__name__)

ROOT_PREFIX = "pgstandby-"
OWNER_MARK = ".pgstandby-owner"

MEMORY_FS = Path("/dev/shm")


def default_base() -> Path:
    """``PGSTANDBY_TMPDIR`` when set; else ``/dev/shm`` (memory: initdb 0.4 s instead of
    1.2 s, a base backup 0.09 s instead of 1 s here) when it is there and usable; else the
    system temp dir. Test servers only: nothing there survives a reboot."""
    chosen = os.environ.get("PGSTANDBY_TMPDIR")
    if chosen:
        return Path(chosen)
    if MEMORY_FS.is_dir() and os.access(MEMORY_FS, os.W_OK | os.X_OK):
        return MEMORY_FS
    return Path(tempfile.gettempdir())


def processes_under(root: Path) -> list[int]:
    """PIDs whose working directory lies under ``root``: every PostgreSQL process chdirs
    into its data directory, so this finds a cluster's postmasters and backends alike."""
    found = []
    root_s = str(root.resolve())
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cwd = os.readlink(entry / "cwd")
        except OSError:
            continue
        if cwd == root_s or cwd.startswith(root_s + "/"):
            found.append(int(entry.name))
    return found


def kill_and_reap(root: Path, timeout: float = 10.0) -> None:
    def none_left() -> bool:
        pids = [p for p in processes_under(root) if p != os.getpid()]
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        if pids:
            raise ProcessLookupError(f"still running: {pids}")
        return True

    try:
        poll_until(none_left, what=f"every process under {root} to die", timeout=timeout)
    except WaitTimeoutError as exc:
        log.warning("%s", exc)


def sweep_leftovers(base: Path) -> list[Path]:
    """Remove session roots whose owning process is gone (a pytest killed with SIGKILL).

    Only directories carrying our owner mark are touched.
    """
    removed = []
    for candidate in base.glob(ROOT_PREFIX + "*"):
        mark = candidate / OWNER_MARK
        try:
            owner = int(mark.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            continue
        if pid_alive(owner):
            continue
        kill_and_reap(candidate)
        shutil.rmtree(candidate, ignore_errors=True)
        removed.append(candidate)
        log.info("removed leftover %s of dead process %d", candidate, owner)
    return removed


PORT_MARK = ".pgstandby-port-"


def free_port() -> int:
    """A port the kernel has free on 127.0.0.1 now (another process may take it next)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def reserve_port(base: Path, attempts: int = 50) -> tuple[int, Path]:
    """A free port and a reservation of it that holds across processes (pytest-xdist
    workers) until released: ``<base>/.pgstandby-port-<n>`` made with O_EXCL, holding
    the owner's pid. A reservation whose owner is dead is reclaimed. Between this and
    the server's bind, no other session of this machine takes the port."""
    for _ in range(attempts):
        port = free_port()
        mark = base / f"{PORT_MARK}{port}"
        try:
            fd = os.open(mark, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            with contextlib.suppress(OSError, ValueError):
                if not pid_alive(int(mark.read_text().split()[0])):
                    mark.unlink()  # its owner died: free again (next attempt may take it)
            continue
        with os.fdopen(fd, "w") as out:
            out.write(f"{os.getpid()}\n")
        return port, mark
    raise OSError(f"no port could be reserved in {base} after {attempts} attempts")
