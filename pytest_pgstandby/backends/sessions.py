"""The local backend's session directories: where they go (a memory filesystem when
there is one), the processes working in them, and the sweep of those a dead session left.

Only directories carrying the owner mark are ever touched; a symlink is never followed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import shutil
import signal
import stat
import tempfile
from pathlib import Path

from .._wait import poll_until
from ..errors import SetupFailedError, UnsafeDataDirError, WaitTimeoutError
from .owners import owner_alive, owner_stamp, process_start
from .ports import PORT_MARK

log = logging.getLogger(__name__)

ROOT_PREFIX = "pgstandby-"
TEMPLATE_PREFIX = ROOT_PREFIX + "template-"  # template.py's cache: kept across sessions
STAGING = ".staging-"  # `.<template>.staging-*`: a template being made, renamed when done
OWNER_MARK = ".pgstandby-owner"
HOME_PREFIX = "pgstandby-uid"  # + the account's uid: private_dir()
LEDGER_SUFFIX = ".pids"

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


#: what a step's output or an OSError says when the harness's filesystem is the cause
_FILESYSTEM = (
    ("No space left on device", "full"),
    ("Disk quota exceeded", "over this account's quota"),
    ("Read-only file system", "read-only"),
)


def filesystem_problem(seen: str) -> str | None:
    """The harness directory's filesystem as the cause of a failure (``seen``: a step's
    output, an OSError's text), in words with the fix; None when it is not the cause."""
    for words, state in _FILESYSTEM:
        if words in seen:
            base = default_base()
            room = f"free space there (`df -h {base}`), or " if state != "read-only" else ""
            return (
                f"the filesystem of the harness's temporary directory {base} is {state} "
                f"({words}). Fix: {room}set PGSTANDBY_TMPDIR to a directory on a writable "
                "filesystem with room (a pair takes ~100 MB) that every account can traverse, "
                "such as /tmp"
            )
    return None


def processes_under(root: Path) -> list[int]:
    """PIDs whose working directory lies under ``root``. Only an observation (tests ask it
    whether anything is left): nothing is signalled for standing in a directory."""
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


def orphan_segments(uid: int, since: float) -> list[Path]:
    """PostgreSQL's POSIX shared memory segments (``/dev/shm/PostgreSQL.<n>``) of ``uid``,
    made since ``since`` (a time.time()), that no process maps: what a standalone backend
    killed with SIGKILL (initdb's) leaves. One that any process maps is in use: kept."""
    found = []
    for segment in MEMORY_FS.glob("PostgreSQL.*"):
        try:
            seen = segment.lstat()
        except OSError:
            continue
        if stat.S_ISREG(seen.st_mode) and seen.st_uid == uid and seen.st_ctime >= since:
            found.append(segment)
    if not found:
        return []
    mapped: set[str] = set()
    for maps in Path("/proc").glob("[0-9]*/maps"):
        with contextlib.suppress(OSError):
            lines = maps.read_text().splitlines()
            mapped.update(line.split(None, 5)[-1] for line in lines if "/dev/shm/" in line)
    return [s for s in found if str(s) not in mapped]


def _uid_of(pid: int) -> int | None:
    try:
        return os.stat(f"/proc/{pid}").st_uid
    except OSError:
        return None


def private_dir(parent: Path, servers_uid: int) -> Path:
    """This account's own directory in ``parent`` (``/dev/shm`` is writable by every
    account): every cache, lock, mark and session directory of the harness lives in it,
    so nothing another account plants is ever found there. Made by this account, not
    writable by any other, traversable by the servers' account (0711 when that is another
    account, else 0700); a symlink is never followed. One that is not provably this
    account's is set aside (renamed, when we may) with a one-line notice, never used."""
    euid = os.geteuid()
    path = parent / f"{HOME_PREFIX}{euid}"
    mode = 0o700 if servers_uid == euid else 0o711
    with contextlib.suppress(FileExistsError):
        os.mkdir(path, mode)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError:
        fd = -1  # a symlink, a file: not ours
    try:
        seen = os.fstat(fd) if fd >= 0 else path.lstat()
        if fd >= 0 and seen.st_uid == euid:
            os.fchmod(fd, mode)  # whatever the umask made of it, or a chmod since
            return path
    finally:
        if fd >= 0:
            os.close(fd)
    aside = parent / f".{path.name}.foreign-{secrets.token_hex(4)}"
    try:
        os.rename(path, aside)
    except OSError as exc:
        raise UnsafeDataDirError(
            f"{path} is not this account's (owner uid {seen.st_uid}, "
            f"{stat.filemode(seen.st_mode)}): the harness keeps its caches and servers' "
            f"directories there and will not use one it did not make ({exc.strerror}). "
            "Fix: have it removed (it lies in a directory every account can write), or set "
            "PGSTANDBY_TMPDIR to a directory only you can write, such as one in your home "
            "(traversable by the servers' account)."
        ) from None
    log.warning(
        "set aside %s as %s: not made by this account (owner uid %d); never used",
        path,
        aside,
        seen.st_uid,
    )
    return private_dir(parent, servers_uid)


def harness_dir(parent: Path, servers_uid: int, who: str) -> Path:
    """``private_dir(parent)``, or an error naming the fix when ``parent`` is unusable."""
    if not parent.is_dir():
        raise SetupFailedError(
            f"the harness's temporary directory {parent} does not exist or is not a "
            "directory. Fix: set PGSTANDBY_TMPDIR to an existing directory every account "
            "can traverse, such as /tmp, or unset it."
        )
    try:
        return private_dir(parent, servers_uid)
    except PermissionError as exc:
        raise SetupFailedError(
            f"the harness directory cannot be made in {parent}: it cannot be reached by the "
            f"account {who!r} ({exc.strerror}). Fix: set PGSTANDBY_TMPDIR to a directory "
            "this account can write and every account can traverse, such as /tmp."
        ) from None
    except OSError as exc:
        raise SetupFailedError(
            f"the harness directory cannot be made in {parent}: "
            + (filesystem_problem(str(exc)) or f"{exc}. Fix: set PGSTANDBY_TMPDIR elsewhere")
            + "."
        ) from None


def ledger_of(root: Path) -> Path:
    """Where a session directory's processes are recorded: beside it, in the private
    directory (the session directory itself is the servers' account's to write)."""
    return root.parent / f".{root.name}{LEDGER_SUFFIX}"


def record_process(root: Path, pid: int) -> None:
    """Note a process the harness started for the session in ``root`` (pid and start
    time): the only processes a sweep or teardown of that session ever signals."""
    fd = os.open(ledger_of(root), os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "a") as out:
        out.write(owner_stamp(pid))


def recorded_processes(root: Path) -> list[int]:
    """The recorded processes of ``root`` that still run: the same pid *and* start time
    (a pid reused by another process since is not ours)."""
    try:
        lines = ledger_of(root).read_text().splitlines()
    except OSError:
        return []
    alive = []
    for line in lines:
        parts = line.split()
        if len(parts) == 2 and parts[0].isdigit() and process_start(int(parts[0])) == parts[1]:
            alive.append(int(parts[0]))
    return alive


def with_descendants(pids: list[int], uids: set[int]) -> list[int]:
    """``pids`` and every process descending from them that runs as one of ``uids``: a
    postmaster's backends, a setup script's pg_basebackup and its ``sleep``."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    found: list[int] = []
    todo = list(pids)
    while todo:
        pid = todo.pop()
        if pid in found or pid == os.getpid():
            continue
        found.append(pid)
        todo.extend(c for c in children.get(pid, []) if _uid_of(c) in uids)
    return found


def stop_recorded(root: Path, uids: set[int], timeout: float = 10.0) -> None:
    """SIGKILL the processes recorded for ``root`` and their descendants of ``uids``, and
    wait until none is left. A process that merely works in the directory (a shell
    ``cd``'d into a kept session) is never signalled."""

    def none_left() -> bool:
        pids = with_descendants(recorded_processes(root), uids)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        if pids:
            raise ProcessLookupError(f"still running: {pids}")
        return True

    try:
        poll_until(none_left, what=f"every process of {root} to die", timeout=timeout)
    except WaitTimeoutError as exc:
        log.warning("%s", exc)


def remove_session(root: Path, uids: set[int]) -> None:
    """Stop what was recorded for ``root``, then remove it and its ledger."""
    stop_recorded(root, uids)
    shutil.rmtree(root, ignore_errors=True)
    ledger_of(root).unlink(missing_ok=True)


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

    ``base`` is the account's private directory. Only what provably_ours() proves ours is
    touched (``uids``: this process's account and the servers'), and only the processes
    recorded for it (and their descendants of those accounts) are signalled.
    """
    uids = uids or {os.geteuid()}
    removed = []
    for candidate in base.glob(ROOT_PREFIX + "*"):
        stamp = provably_ours(candidate, uids)
        if stamp is None or owner_alive(stamp):
            continue
        remove_session(candidate, uids)
        removed.append(candidate)
        log.info("removed leftover %s of dead process %s", candidate, stamp.split()[0])
    for mark in base.glob(PORT_MARK + "*"):  # a dead session's port reservations
        with contextlib.suppress(OSError, ValueError, IndexError):
            seen = mark.lstat()
            ours = stat.S_ISREG(seen.st_mode) and seen.st_uid in uids
            if ours and not owner_alive(mark.read_text()):
                mark.unlink()
                removed.append(mark)
    return removed


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


def _left_by_a_session(name: str) -> bool:
    if name.startswith("." + TEMPLATE_PREFIX) and STAGING in name:
        return True  # a template build that never finished
    if name.startswith((TEMPLATE_PREFIX, HOME_PREFIX)):
        return False  # a cache kept by design; an account's private directory
    return name.startswith((ROOT_PREFIX, PORT_MARK)) or name.endswith(LEDGER_SUFFIX)


def leftovers(base: Path) -> list[str]:
    """What sessions left in ``base`` (a ``PGSTANDBY_TMPDIR``) and in the accounts' private
    directories there: session roots, snapshots, xdist runs' directories, their ledgers,
    port marks and unfinished template builds (not the initdb templates, a cache kept by
    design), and processes working there."""
    found = [entry.name for entry in base.iterdir() if _left_by_a_session(entry.name)]
    for home in sorted(base.glob(HOME_PREFIX + "*")):
        found += [f"{home.name}/{e.name}" for e in home.iterdir() if _left_by_a_session(e.name)]
    return found + [f"pid {pid}" for pid in processes_under(base)]
