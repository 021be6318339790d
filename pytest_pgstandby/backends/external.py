"""Servers the harness did not start: a DSN, and maybe where the data directory is (a path
on this machine, or a Docker container). What ``Server(...)`` and plain DSNs become, and
what ``--pgstandby-primary-dsn`` / ``--pgstandby-standby-dsn`` hand to the fixtures.

The harness never starts, stops, kills, promotes, changes or deletes such a server: every
verb that would raises :class:`~pytest_pgstandby.errors.NotOwnedError` naming the node.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import psycopg

from .._text import mask_secrets
from .._wait import connect_budget
from ..errors import ConfigurationError, FilesUnavailableError, NotOwnedError, WrongRoleError
from .base import (
    CONTAINER_PGDATA,
    NodeHandle,
    PeerAddress,
    Reach,
    StopMode,
    conninfo_params,
    dsn_address,
    reach_here,
    shown_dsn,
    wait_accepting,
)

if TYPE_CHECKING:
    from .containers import ContainerFiles

# backends.containers is imported where a container is named, not at the top: docker-py
# costs ~0.2 s to import, and most external servers are plain DSNs.

log = logging.getLogger(__name__)

_BARE_DSN_FIX = (
    "Pass Server(dsn, data_dir='/path/to/data') for a server on this machine, or "
    "Server(dsn, container='<container name>') for one in a Docker container"
)


@dataclass(frozen=True, repr=False)
class Server:
    """A server the harness did not start: a DSN, and where its data directory can be read.

    ``data_dir`` alone is a path on this machine. ``container`` names a Docker container
    whose files are read with ``docker exec cat``; ``data_dir`` is then the path inside the
    container (default: the server's ``data_directory``, else ``$PGDATA``, else
    ``/var/lib/postgresql/data``). With neither, checks that need files say so.

    >>> Server("host=127.0.0.1 port=5433 user=postgres", data_dir="/srv/standby")
    Server('host=127.0.0.1 port=5433 user=postgres', data_dir='/srv/standby')
    """

    dsn: str
    data_dir: str | None = None
    container: str | None = None

    def __repr__(self) -> str:
        extra = "".join(
            f", {k}={v!r}"
            for k, v in (("data_dir", self.data_dir), ("container", self.container))
            if v is not None
        )
        return f"Server({mask_secrets(self.dsn)!r}{extra})"


class ExternalNode:
    """A handle over a running server that someone else owns."""

    owned = False

    def __init__(
        self,
        server: Server,
        *,
        name: str = "",
        role: str = "server",
        timeout: float = 60.0,
        files_fix: str = _BARE_DSN_FIX,
        origin: str = "given as a DSN or Server(...)",
    ) -> None:
        try:
            self.params = conninfo_params(server.dsn)
        except psycopg.Error as exc:
            raise ConfigurationError(
                f"{role}: {mask_secrets(server.dsn)!r} is not a libpq conninfo string or URI "
                f"({mask_secrets(str(exc)).strip()}). Fix: 'host=... port=... user=...' or "
                "'postgresql://user@host:port/db'."
            ) from None
        self.server = server
        self.name = name
        self.role = role
        self.timeout = timeout
        self._files_fix = files_fix
        self._origin = origin
        self._container_dir: str | None = None

    def __repr__(self) -> str:
        return f"<ExternalNode {self.name or self.role} {self.server!r}>"

    # identity ---------------------------------------------------------------------------
    @property
    def dsn(self) -> str:
        return self.server.dsn

    @property
    def host(self) -> str:
        return self.params.get("host") or self.params.get("hostaddr") or ""

    @property
    def port(self) -> int:
        return int((self.params.get("port") or "5432").split(",")[0])

    @property
    def data_dir(self) -> str:
        if self.server.container:
            return self._in_container()
        return self.server.data_dir or ""

    @property
    def given_data_dir(self) -> str:
        return self.server.data_dir or ""

    def _label(self) -> str:
        shown = shown_dsn(self.dsn)
        return f"{self.name} ({shown})" if self.name else shown

    def container_name(self) -> str | None:
        return self.server.container

    # never ours to change ---------------------------------------------------------------
    def refuse_unless_owned(self, verb: str) -> None:
        raise self._refusal(verb)

    def _refusal(self, verb: str) -> NotOwnedError:
        return NotOwnedError(
            f"refusing to {verb} {self.role} {self._label()}: it is an external server "
            f"({self._origin}), and pytest-pgstandby never starts, stops, kills, promotes, "
            "changes or deletes a server it did not start. Fix: do it with the server "
            "owner's own tools, or let the harness build the pair (no "
            "--pgstandby-primary-dsn) to use this verb."
        )

    def stop(self, mode: StopMode = "fast", timeout: float = 60.0) -> None:
        self.refuse_unless_owned(f"stop ({mode})")

    def start(self) -> None:
        self.refuse_unless_owned("start")

    def kill(self) -> None:
        self.refuse_unless_owned("kill")

    def reclone(self) -> None:
        self.refuse_unless_owned("reclone")

    def pause(self) -> None:
        self.refuse_unless_owned("pause")

    def resume(self) -> None:
        self.refuse_unless_owned("resume")

    def open_relay(self, host: str, port: str) -> tuple[str, str]:
        raise self._refusal("partition")

    def write_file(self, relpath: str, text: str, append: bool = False) -> None:
        self.refuse_unless_owned(f"write {relpath} of")

    def run(
        self, argv: list[str], env: dict[str, str] | None = None, timeout: float | None = None
    ) -> str:
        raise self._refusal(f"run {argv[0]} as the server account of")

    @property
    def shared_dir(self) -> str:
        raise self._refusal("keep backups or a WAL archive for")

    def cut_relay(self) -> None:
        self.refuse_unless_owned("partition")

    def mend_relay(self) -> None:
        self.refuse_unless_owned("heal")

    # state ------------------------------------------------------------------------------
    def is_running(self) -> bool:
        """Whether it accepts a connection now (the harness has no process to look at)."""
        try:
            with psycopg.connect(self.dsn, connect_timeout=connect_budget(2)):
                return True
        except psycopg.Error:
            return False

    def wait_ready(self) -> None:
        """Until it accepts connections; then a server given as the primary must not be in
        recovery and one given as a standby must be (the tests would fail on their own
        asserts otherwise, far from the cause)."""
        wait_accepting(
            lambda: self.dsn,
            what=f"{self._label()} to accept connections",
            timeout=self.timeout,
            log=self.log,
        )
        if self.role not in ("primary", "standby"):
            return
        with psycopg.connect(self.dsn, connect_timeout=connect_budget(5)) as conn:
            row = conn.execute("SELECT pg_is_in_recovery()").fetchone()
        in_recovery = bool(row and row[0])
        if in_recovery != (self.role == "standby"):
            really = "a standby (in recovery)" if in_recovery else "a primary (not in recovery)"
            fix = (
                "the DSN of a standby of that primary (standby.signal, streaming from it)"
                if self.role == "standby"
                else "the DSN of the primary (its standbys' primary_conninfo names it)"
            )
            raise WrongRoleError(
                f"{self._label()}, given by {self._origin} as the {self.role}, is {really}, "
                f"not a {self.role}. Fix: give {fix}."
            )

    def log(self) -> str:
        """The container's output for a server named by container; else nothing (its log is
        wherever its owner sends it)."""
        if self.server.container:
            from .containers import find_container

            try:
                logs = find_container(self.server.container).logs(tail=500)
            except FilesUnavailableError as exc:
                return f"(no log: {exc})"
            return bytes(logs).decode(errors="replace")
        return ""

    def setup_output(self) -> str:
        return ""  # not built by the harness

    # files ------------------------------------------------------------------------------
    def _container_files(self) -> ContainerFiles:
        from .containers import ContainerFiles, find_container

        assert self.server.container is not None

        def execute(argv: list[str]) -> tuple[int, bytes]:
            code, out = find_container(str(self.server.container)).exec_run(argv)
            return int(code), bytes(out)

        return ContainerFiles(self.server.container, execute, self._in_container)

    def _in_container(self) -> str:
        if self._container_dir is None:
            self._container_dir = self.server.data_dir or self._guess_container_dir()
        return self._container_dir

    def _guess_container_dir(self) -> str:
        try:
            with psycopg.connect(self.dsn, connect_timeout=connect_budget(5)) as conn:
                row = conn.execute("SHOW data_directory").fetchone()
                if row and row[0]:
                    return str(row[0])
        except psycopg.Error:
            pass  # needs superuser or pg_read_all_settings; fall back to the image's contract
        from .containers import container_env, find_container

        assert self.server.container is not None
        env = container_env(find_container(self.server.container), "PGDATA")
        return env or CONTAINER_PGDATA

    def _no_files(self) -> FilesUnavailableError:
        return FilesUnavailableError(
            f"cannot read files of {self.role} {self._label()}: it was given as a bare DSN. "
            + self._files_fix
        )

    def file_location(self, relpath: str = "") -> str:
        if self.server.container:
            return self._container_files().location(relpath)
        if self.server.data_dir:
            return os.path.join(self.server.data_dir, relpath) if relpath else self.server.data_dir
        return "(no data directory given)"

    def read_file(self, relpath: str) -> str:
        if self.server.container:
            return self._container_files().read(relpath)
        if not self.server.data_dir:
            raise self._no_files()
        path = os.path.join(self.server.data_dir, relpath)
        try:
            with open(path, encoding="utf-8", errors="replace") as fh:
                return fh.read()
        except FileNotFoundError:
            raise
        except OSError as exc:
            raise FilesUnavailableError(
                f"cannot read {relpath} in {self.server.data_dir}: {exc.strerror or exc}"
            ) from None

    def exists(self, relpath: str) -> bool:
        if self.server.container:
            return self._container_files().exists(relpath)
        if not self.server.data_dir:
            raise self._no_files()
        if not os.access(self.server.data_dir, os.R_OK | os.X_OK):
            raise FilesUnavailableError(
                f"cannot look into {self.server.data_dir}: permission denied"
            )
        return os.path.exists(os.path.join(self.server.data_dir, relpath))

    def reach(self, host: str, port: int) -> Reach:
        """From the server's container; a server without one is taken to run here."""
        if self.server.container:
            return self._container_files().reach(host, port)
        return reach_here(host, port)

    # addresses --------------------------------------------------------------------------
    def peer_address(self, peer: NodeHandle) -> PeerAddress:
        """A server in a container is reached inside its Docker network; any other by its
        DSN (also when its container cannot be found, with a warning)."""
        if self.server.container:
            from .containers import container_address, find_container

            try:
                mine = find_container(self.server.container)
                theirs = peer.container_name()
                peer_container = find_container(theirs) if theirs else None
                return container_address(mine, peer_container, str(self.port))
            except FilesUnavailableError as exc:
                log.warning("%s: %s; using its DSN as its address", self.role, exc)
        elif peer.container_name():
            # the peer (a standby) is in a container and this server was given by DSN
            # only: the container that publishes this DSN's port beside it is this server
            from .containers import container_address, container_publishing, find_container

            try:
                peer_container = find_container(str(peer.container_name()))
                mine = container_publishing(self.host, self.port, peer_container)
            except FilesUnavailableError:
                mine = None
            if mine is not None:
                return container_address(mine, peer_container, str(self.port))
        return dsn_address(self.dsn, self.role)


class ExternalBackend:
    """Hands out the servers it was given, in order; starts and deletes nothing."""

    name = "external"
    replication_password = ""  # the servers were built elsewhere

    def __init__(self, primary: Server, standbys: Sequence[Server], timeout: float = 60.0) -> None:
        self.primary = primary
        self.standbys = list(standbys)
        self.timeout = timeout
        self._given = 0

    runs_from = ""
    hardened = False  # not the harness's to choose: the servers are someone else's

    def describe(self) -> str:
        n = len(self.standbys)
        return (
            f"external: primary {mask_secrets(self.primary.dsn)}, {n} standby"
            f"{'s' * (n != 1)} (servers the harness did not start; it never changes them)"
        )

    def _node(self, server: Server, name: str, role: str, option: str) -> ExternalNode:
        fix = (
            f"Give --pgstandby-{option}-data-dir (a directory on this machine) or "
            f"--pgstandby-{option}-container (a Docker container) so that its files can be read"
        )
        origin = f"--pgstandby-{option}-dsn"
        return ExternalNode(
            server, name=name, role=role, timeout=self.timeout, files_fix=fix, origin=origin
        )

    def create_primary(self, name: str) -> ExternalNode:
        return self._node(self.primary, name, "primary", "primary")

    def create_standby(
        self, name: str, upstream: NodeHandle, slot: str | None = None
    ) -> ExternalNode:
        if self._given >= len(self.standbys):
            raise ConfigurationError(
                f"a standby {name!r} was asked for, but only {len(self.standbys)} standby "
                "DSN(s) were given. Fix: add --pgstandby-standby-dsn for each standby."
            )
        server = self.standbys[self._given]
        self._given += 1
        return self._node(server, name, "standby", "standby")

    def create_node(self, name: str) -> ExternalNode:
        raise NotOwnedError(
            f"cannot add {name} to a cluster of external servers: the harness starts no "
            "server there. Fix: build the pair with the harness (no --pgstandby-primary-dsn)."
        )

    def close(self, keep: bool = False) -> None:
        """Nothing to remove: these servers belong to someone else."""
