"""The small interface every backend implements."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

StopMode = Literal["smart", "fast", "immediate"]
Role = Literal["primary", "standby"]


@dataclass(frozen=True)
class Credentials:
    """Who the harness connects as, from the test process."""

    user: str = "postgres"
    password: str | None = None
    dbname: str = "postgres"


class NodeHandle(Protocol):
    """One server process or container, as a backend sees it."""

    name: str
    role: Role
    host: str  # reachable from the test process (always 127.0.0.1 here)
    port: int
    data_dir: str  # path of the data directory on the node's own filesystem
    credentials: Credentials

    def read_file(self, relpath: str) -> str: ...
    def exists(self, relpath: str) -> bool: ...
    def log(self) -> str: ...
    def setup_output(self) -> str: ...
    def is_running(self) -> bool: ...
    def stop(self, mode: StopMode = "fast", timeout: float = 60.0) -> None: ...
    def start(self) -> None: ...
    def kill(self) -> None: ...


class Backend(Protocol):
    """Creates nodes. ``create_standby`` runs ``lab/setup-standby.sh`` and nothing else."""

    name: str

    def describe(self) -> str: ...
    def create_primary(self, name: str) -> NodeHandle: ...
    def create_standby(self, name: str, primary: NodeHandle) -> NodeHandle: ...
    def close(self, keep: bool = False) -> None: ...
