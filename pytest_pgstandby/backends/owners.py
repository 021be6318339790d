"""Who made something: an owner stamp is a process's pid and start time (clock ticks
since boot), which tells a live owner from a later process that reused its pid. Marks,
ledgers and Docker labels carry one; sweeps ask whether it still runs."""

from __future__ import annotations

import os
from pathlib import Path


def pid_alive(pid: int) -> bool:
    """Whether a process exists (owner checks for leftovers of killed sessions)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def process_start(pid: int) -> str | None:
    """The process's start time (clock ticks since boot, /proc/<pid>/stat field 22): with
    the pid, what tells a process from a later one that reused its pid."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def owner_stamp(pid: int | None = None) -> str:
    """What an owner mark holds: the owning process's pid and start time."""
    pid = os.getpid() if pid is None else pid
    return f"{pid} {process_start(pid) or ''}".strip() + "\n"


def owner_alive(stamp: str) -> bool:
    """Whether the process a mark names still runs: the same pid *and* start time."""
    parts = stamp.split()
    pid = int(parts[0])
    if pid <= 0:
        return True  # no owner named: nothing proves it dead, so it is left alone
    if not pid_alive(pid):
        return False
    return len(parts) < 2 or process_start(pid) == parts[1]
