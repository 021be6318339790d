"""The small interface every backend implements."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol

import psycopg

from .._wait import poll_until

StopMode = Literal["smart", "fast", "immediate"]

# The lab's replication role, the same in every backend and in lab/docker-compose.yml
# (the hardened profile will replace the password with a random one per run).
REPLICATION_USER = "replicator"
REPLICATION_PASSWORD = "replicator_password"


def pid_alive(pid: int) -> bool:
    """Whether a process exists (owner checks for leftovers of killed sessions)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def wait_accepting(
    conninfo: Callable[[], str],
    *,
    what: str,
    timeout: float,
    log: Callable[[], str],
    abort: Callable[[], str | None],
) -> None:
    """Poll until the server answers ``SELECT 1`` (``conninfo`` is asked anew each time:
    a container's published port may not be known yet)."""

    def accepts() -> bool:
        with psycopg.connect(conninfo(), connect_timeout=2) as conn:
            conn.execute("SELECT 1")
        return True

    poll_until(accepts, what=what, timeout=timeout, log=log, abort=abort)


Role = Literal["primary", "standby"]


@dataclass(frozen=True)
class Credentials:
    """Who the harness connects as, from the test process."""

    user: str = "postgres"
    password: str | None = None
    dbname: str = "postgres"


class NodeHandle(Protocol):
    """One server process or container, as a backend sees it."""

    @property
    def name(self) -> str: ...
    @property
    def role(self) -> Role: ...
    @property
    def host(self) -> str:
        """Reachable from the test process: always 127.0.0.1 here."""

    @property
    def port(self) -> int: ...
    @property
    def data_dir(self) -> str:
        """The data directory's path on the node's own filesystem."""

    @property
    def credentials(self) -> Credentials: ...

    def read_file(self, relpath: str) -> str: ...
    def exists(self, relpath: str) -> bool: ...
    def log(self) -> str: ...
    def setup_output(self) -> str: ...
    def is_running(self) -> bool: ...
    def wait_ready(self) -> None: ...
    def stop(self, mode: StopMode = "fast", timeout: float = 60.0) -> None: ...
    def start(self) -> None: ...
    def kill(self) -> None: ...


class Backend(Protocol):
    """Creates nodes. ``create_standby`` runs ``lab/setup-standby.sh`` and nothing else.

    ``create_primary`` may return while the primary still initialises (the standby script
    waits for it with ``pg_isready``); ``create_standby`` returns once the standby accepts
    connections. Call ``wait_ready()`` on a handle before using it on its own."""

    name: str

    def describe(self) -> str: ...
    def create_primary(self, name: str) -> NodeHandle: ...
    def create_standby(self, name: str, primary: NodeHandle) -> NodeHandle: ...
    def close(self, keep: bool = False) -> None: ...
