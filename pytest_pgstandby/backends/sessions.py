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
import stat
import subprocess
import tempfile
from pathlib import Path

from .._wait import poll_until
from ..errors import SetupFailedError, UnsafeDataDirError, UnsupportedError, WaitTimeoutError
from .base import RELAY, owner_alive, owner_stamp

log = logging.getLogger(__name__)

ROOT_PREFIX = "pgstandby-"
TEMPLATE_PREFIX = ROOT_PREFIX + "template-"  # template.py's cache: kept across sessions
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


def _uid_of(pid: int) -> int | None:
    try:
        return os.stat(f"/proc/{pid}").st_uid
    except OSError:
        return None


def kill_and_reap(root: Path, timeout: float = 10.0, uids: set[int] | None = None) -> None:
    """SIGKILL every process working under ``root`` (and wait until none is left); with
    ``uids``, only processes of those accounts: never another user's."""

    def none_left() -> bool:
        pids = [p for p in processes_under(root) if p != os.getpid()]
        if uids is not None:
            pids = [p for p in pids if _uid_of(p) in uids]
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


def provably_ours(candidate: Path, uids: set[int]) -> str | None:
    """The owner stamp of a session root the harness made, or None: a real directory (not
    a symlink) and its owner mark (a regular file), both of an account in ``uids``, and
    every entry of the directory too (nothing of another user's is inside)."""
    try:
        found = candidate.lstat()
        if not stat.S_ISDIR(found.st_mode) or found.st_uid not in uids:
            return None
        mark = (candidate / OWNER_MARK).lstat()
        if not stat.S_ISREG(mark.st_mode) or mark.st_uid not in uids:
            return None
        if any(entry.lstat().st_uid not in uids for entry in candidate.iterdir()):
            return None
        text = (candidate / OWNER_MARK).read_text()
        int(text.split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return text


def sweep_leftovers(base: Path, uids: set[int] | None = None) -> list[Path]:
    """Remove session roots whose owning process is gone (a pytest killed with SIGKILL).

    Only what provably_ours() proves ours is touched (``uids``: this process's account
    and the servers'), and only processes of those accounts are signalled.
    """
    uids = uids or {os.geteuid()}
    removed = []
    for candidate in base.glob(ROOT_PREFIX + "*"):
        stamp = provably_ours(candidate, uids)
        if stamp is None or owner_alive(stamp):
            continue
        kill_and_reap(candidate, uids=uids)
        shutil.rmtree(candidate, ignore_errors=True)
        removed.append(candidate)
        log.info("removed leftover %s of dead process %s", candidate, stamp.split()[0])
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
                if not owner_alive(mark.read_text()):
                    mark.unlink()  # its owner died: free again (next attempt may take it)
            continue
        with os.fdopen(fd, "w") as out:
            out.write(owner_stamp())
        return port, mark
    raise OSError(f"no port could be reserved in {base} after {attempts} attempts")


def start_relay(root: Path, host: str, port: str, who: str) -> tuple[subprocess.Popen[bytes], str]:
    """relay.pl towards ``host:port`` on a free port of this machine, working in ``root``
    (so that teardown and the sweep of a dead session find it like the servers)."""
    perl = shutil.which("perl")
    if perl is None:
        raise UnsupportedError(
            f"partition() of {who} is not supported by the local backend here: its relay "
            "is a perl script and no perl is on PATH. Fix: install perl (Debian: "
            "perl-base), or use the docker backend."
        )
    relay = subprocess.Popen(
        [perl, str(RELAY), "0", host, port],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        cwd=root,
        start_new_session=True,
    )
    assert relay.stdout is not None
    line = relay.stdout.readline().decode().split()  # printed once it listens
    if len(line) != 2:
        relay.kill()
        raise SetupFailedError(f"the relay of {who} did not start: {line}")
    return relay, line[0]


def refuse_in_use(target: Path, in_use: list[tuple[Path, str]]) -> None:
    """A standby's new data directory must not hold, or lie in, what is in use (another
    node's data, the session's sockets or scripts): setup-standby.sh empties it first."""
    for used, what in in_use:
        used = used.resolve()
        if used == target or used in target.parents or target in used.parents:
            raise UnsafeDataDirError(
                f"refusing to run setup-standby.sh on data directory {target}: it holds "
                f"{what} ({used}), which the script's first step would delete. Fix: a "
                "directory of its own (let the harness choose it)."
            )


def leftovers(base: Path) -> list[str]:
    """What sessions left in ``base``: session roots and port marks (not the initdb
    template, a cache kept by design), and processes working there."""
    found = [
        entry.name
        for entry in base.iterdir()
        if (entry.name.startswith(ROOT_PREFIX) and not entry.name.startswith(TEMPLATE_PREFIX))
        or entry.name.startswith(PORT_MARK)
    ]
    return found + [f"pid {pid}" for pid in processes_under(base)]
