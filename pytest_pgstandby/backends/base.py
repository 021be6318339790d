"""The small interface every backend implements, and what backends share.

A ``NodeHandle`` is one server as a backend sees it: where it is reached from the test
process (``dsn``), where its files are and how to read them, whether it runs in a
container, how a peer server reaches it (``peer_address``), and process control. Code
above ``backends/`` talks to a ``Node`` over such a handle and never to a path, a
container or a DSN it parses itself.
"""

from __future__ import annotations

import signal
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from .._text import MASK, mask_secrets
from .._wait import connect_budget, poll_until
from ..errors import ConfigurationError

StopMode = Literal["smart", "fast", "immediate"]
Role = Literal["primary", "standby"]

LOOPBACK = ("127.0.0.1", "localhost", "::1")
#: Where a server in a container keeps its data: the official image's PGDATA up to 17,
#: which the lab and the harness pin (postgres:18 moved its default), and the procedure's.
CONTAINER_PGDATA = "/var/lib/postgresql/data"
#: How each shutdown mode is asked of a postmaster.
STOP_SIGNALS = {"smart": signal.SIGTERM, "fast": signal.SIGINT, "immediate": signal.SIGQUIT}
#: The longest pause between two asks of a starting server: a server starts in 20-150 ms,
#: and poll_until's 50 ms would see it up to 50 ms late, three times per local pair. An
#: ask costs ~0.3 ms before the socket exists, and a fork (~1 ms) while it starts up.
ACCEPT_POLL = 0.01


def wait_accepting(
    conninfo: Callable[[], str],
    *,
    what: str,
    timeout: float,
    log: Callable[[], str],
    abort: Callable[[], str | None] | None = None,
    abort_every: float = 0.0,
) -> None:
    """Poll until the server answers ``SELECT 1`` (``conninfo`` is asked anew each time:
    a container's published port may not be known yet). ``abort_every``: see poll_until."""

    def accepts() -> bool:
        try:
            conn = psycopg.connect(conninfo(), connect_timeout=connect_budget(2))
        except psycopg.OperationalError as exc:
            permanent = permanent_connect_error(exc)
            if permanent is not None:
                raise ConfigurationError(
                    f"gave up at once waiting for {what}: {permanent}"
                ) from None
            raise
        with conn:
            conn.execute("SELECT 1")
        return True

    poll_until(
        accepts,
        what=what,
        timeout=timeout,
        interval=ACCEPT_POLL,
        log=log,
        abort=abort,
        abort_every=abort_every,
    )


#: what libpq or a server says of a connection that no wait can change (English server
#: messages: a server with other lc_messages is waited for, as before), and the fix
_PERMANENT = (
    (
        (
            "password authentication failed",
            "no password supplied",
            "authentication failed for user",
            "no pg_hba.conf entry",
        ),
        "correct the user and password in the DSN (or PGPASSWORD, ~/.pgpass), or let the "
        "server's pg_hba.conf admit this client",
    ),
    (('" does not exist',), "name a role and a database that exist on that server"),
    (
        (
            "invalid integer value",
            "invalid connection option",
            'missing "=" after',
            "invalid port number",
            "unterminated quoted string",
            "invalid sslmode value",
            "invalid target_session_attrs value",
        ),
        "correct the DSN: 'host=... port=5432 user=... password=... dbname=...' or "
        "'postgresql://user:password@host:port/dbname'",
    ),
)


def permanent_connect_error(exc: psycopg.Error) -> str | None:
    """A failed connection that waiting cannot mend (bad credentials, no such role or
    database, a malformed conninfo) in one line with its fix; None for what may pass (a
    server still starting, a refused or timed-out connection)."""
    text = str(exc).strip()
    for needles, fix in _PERMANENT:
        if any(needle in text for needle in needles):
            return f"{_libpq_said(text)}. Fix: {fix}."
    return None


def _libpq_said(text: str) -> str:
    """The cause in a libpq error, without its "connection to server at ... failed: "
    preamble; passwords masked."""
    return mask_secrets(text.splitlines()[0].rpartition("failed: ")[2] or text)


#: libpq's words for a peer that answered, but not as PostgreSQL does
_NOT_POSTGRES = (
    "invalid response to SSL negotiation",
    "expected authentication request from server",
    "received invalid response",
    "unexpected message from server",
    "SSL SYSCALL error",
)


def not_postgres(dsn: str, timeout: float = 3.0) -> str | None:
    """What answers at the DSN's address when it is not a PostgreSQL server (garbage
    instead of the protocol, or silence for ``timeout`` seconds: no server of ours, or a
    frozen one); None when PostgreSQL answers, even to refuse this client, and when
    nothing listens at all (``connection refused``: a stopped server, for a check to
    report)."""
    try:
        psycopg.connect(dsn, connect_timeout=connect_budget(timeout)).close()
    except psycopg.OperationalError as exc:
        text = str(exc).strip()
        said = _libpq_said(text)
        if "timeout expired" in text:
            return f"nothing answered within {timeout:g} s ({said})"
        if any(words in text for words in _NOT_POSTGRES):
            return f"it answered, but not as PostgreSQL does ({said})"
    except psycopg.Error:
        pass  # a malformed DSN: the caller's own parse names it
    return None


def conninfo_params(dsn: str) -> dict[str, str]:
    """A conninfo string or URI as a dict of strings (psycopg.ProgrammingError if invalid)."""
    return {k: str(v) for k, v in conninfo_to_dict(dsn).items() if v is not None}


def shown_dsn(dsn: str) -> str:
    """A conninfo string for messages: re-made with the password replaced by the mask."""
    try:
        params = conninfo_params(dsn)
    except psycopg.Error:
        return mask_secrets(dsn)
    return make_conninfo("", **{k: (MASK if k == "password" else v) for k, v in params.items()})


@dataclass(frozen=True)
class Credentials:
    """Who the harness connects as, from the test process."""

    user: str = "postgres"
    password: str | None = field(default=None, repr=False)
    dbname: str = "postgres"


@dataclass(frozen=True)
class PeerAddress:
    """How another server (a standby) reaches this one: the host names it may use, the
    port, and where that knowledge came from (for messages)."""

    hosts: list[str]
    port: str
    how: str


def dsn_address(dsn: str, role: str) -> PeerAddress:
    """A server that is not in a container is reached as its DSN says (a loopback name
    stands for all of them)."""
    params = conninfo_params(dsn)
    host = params.get("host") or params.get("hostaddr") or ""
    hosts = list(LOOPBACK) if host in LOOPBACK else [host]
    return PeerAddress(hosts, params.get("port") or "5432", f"the {role}'s DSN")


@dataclass(frozen=True)
class Reach:
    """Whether a server's side resolves a host name and reaches a port there (the seed's
    "verify network connectivity", done without ``ping``, which images may lack)."""

    host: str
    port: int
    addresses: tuple[str, ...]  # what the name resolves to; () when it does not
    reachable: bool
    evidence: str  # what was run and what it answered
    where: str  # "this machine" or the container


def reach_here(host: str, port: int, timeout: float = 3.0) -> Reach:
    """Resolve and connect from this machine (a server the harness runs here)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        return Reach(host, port, (), False, f"getaddrinfo: {exc.strerror}", "this machine")
    addresses = tuple(dict.fromkeys(str(info[4][0]) for info in infos))
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as exc:
        seen = f"TCP connect to {host}:{port}: {exc.strerror or exc}"
        return Reach(host, port, addresses, False, seen, "this machine")
    return Reach(host, port, addresses, True, f"TCP connect to {host}:{port} succeeded",
                 "this machine")  # fmt: skip


class NodeHandle(Protocol):
    """One server process or container, as a backend sees it."""

    @property
    def name(self) -> str:
        """The node's name in its cluster; "" for an anonymous external server."""

    @property
    def role(self) -> str: ...
    @property
    def host(self) -> str:
        """Reachable from the test process: 127.0.0.1 for servers the harness starts."""

    @property
    def port(self) -> int: ...
    @property
    def data_dir(self) -> str:
        """The data directory's path on the node's own filesystem ("" when unknown)."""

    @property
    def dsn(self) -> str:
        """A libpq conninfo string for this server, as seen from the test process."""

    @property
    def given_data_dir(self) -> str:
        """The data directory the harness made or was told ("" when only guessed)."""

    @property
    def owned(self) -> bool:
        """Whether the harness started this server (and so may stop or change it)."""

    def refuse_unless_owned(self, verb: str) -> None:
        """Raise NotOwnedError naming the node and ``verb`` if the harness may not do it."""

    def container_name(self) -> str | None:
        """The Docker container the server runs in, or None."""

    def file_location(self, relpath: str = "") -> str:
        """Where a file of the data directory lives, for messages."""

    def peer_address(self, peer: NodeHandle) -> PeerAddress:
        """How ``peer`` (a standby of this server) reaches this server."""

    def reach(self, host: str, port: int) -> Reach:
        """Resolve ``host`` and reach ``port`` from where the server runs (its container,
        or this machine)."""

    def read_file(self, relpath: str) -> str:
        """A file of the data directory: FileNotFoundError if it does not exist,
        FilesUnavailableError if the directory cannot be read from here."""

    def exists(self, relpath: str) -> bool: ...
    def write_file(self, relpath: str, text: str, append: bool = False) -> None:
        """Write (or append to) a file of the data directory, as the server's account."""

    def run(
        self, argv: list[str], env: dict[str, str] | None = None, timeout: float | None = None
    ) -> str:
        """Run a program as the server's account, in its data directory, with its server's
        programs on PATH and ``PGHOST``/``PGPORT``/``PGUSER`` naming this server over its
        own socket (the superuser, no password); returns the program's output. One that
        fails or outlasts ``timeout`` raises SetupFailedError / WaitTimeoutError with it."""

    @property
    def shared_dir(self) -> str:
        """A directory every server of the cluster reads and writes under the same path:
        where backups and the WAL archive live. Removed with the cluster."""

    def log(self) -> str: ...
    def setup_output(self) -> str: ...
    def is_running(self) -> bool: ...
    def wait_ready(self) -> None: ...
    def stop(self, mode: StopMode = "fast", timeout: float = 60.0) -> None: ...
    def start(self) -> None: ...
    def kill(self) -> None: ...
    def reclone(self) -> None:
        """Run setup-standby.sh on this standby again: wipe and take a new base backup."""

    def pause(self) -> None:
        """Freeze every process of the server (SIGSTOP; ``docker pause``)."""

    def resume(self) -> None: ...
    def open_relay(self, host: str, port: str) -> tuple[str, str]:
        """Start (once) a relay on the node's side of its replication link, towards
        ``host:port`` as the node reaches its upstream; returns the address the node
        should use instead."""

    def cut_relay(self) -> None:
        """Stop the relay (SIGSTOP): no byte crosses, connections stay open."""

    def mend_relay(self) -> None: ...


RELAY = Path(__file__).with_name("relay.pl")


class OwnedHandle:
    """What every handle of a server the harness started shares."""

    owned = True
    data_dir: str

    @property
    def given_data_dir(self) -> str:
        return self.data_dir

    def __repr__(self) -> str:
        """Name, role and masked DSN: never the passwords a handle keeps (its scripts'
        environment, its credentials), which an assertion's output would print."""
        name, role = getattr(self, "name", "?"), getattr(self, "role", "?")
        try:
            where = mask_secrets(str(getattr(self, "dsn", "")))
        except Exception:  # a handle half-made: its port not known yet
            where = "(no address yet)"
        return f"<{type(self).__name__} {name} {role} {where}>"

    def refuse_unless_owned(self, verb: str) -> None:
        """The harness started this server: every verb is allowed."""


class Backend(Protocol):
    """Creates nodes. ``create_standby`` runs ``lab/setup-standby.sh`` and nothing else.

    ``create_primary`` may return while the primary still initialises (the standby script
    waits for it with ``pg_isready``); ``create_standby`` returns once the standby accepts
    connections. Call ``wait_ready()`` on a handle before using it on its own."""

    name: str
    #: whether the servers run the hardened profile (decided by the backend for "auto")
    hardened: bool
    #: what POSTGRES_REPLICATION_PASSWORD the scripts ran with ("" when not known)
    replication_password: str

    def describe(self) -> str: ...
    @property
    def runs_from(self) -> str:
        """What the servers run from, for reports: the image, or where the binaries came
        from ("" for servers the harness did not start)."""

    def create_primary(self, name: str) -> NodeHandle: ...
    def create_standby(
        self, name: str, upstream: NodeHandle, slot: str | None = None
    ) -> NodeHandle: ...
    def create_node(self, name: str) -> NodeHandle:
        """A place for one more server: an empty data directory of its own, no server yet;
        the model fills it (from a backup) and ``start()``s it."""

    def close(self, keep: bool = False) -> None: ...
