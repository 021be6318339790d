"""Cluster (a primary and its standbys) and Node: the replication vocabulary of a DBA.

Knows replication and SQL; knows nothing of pytest nor of where a node lives.

>>> from pytest_pgstandby import start_cluster
>>> with start_cluster(backend="local", standbys=1) as cluster:       # doctest: +SKIP
...     cluster.primary.execute("CREATE TABLE t AS SELECT 1 AS x")
...     cluster.primary.wait_for_catchup(cluster.standby)
...     cluster.standby.execute("SELECT x FROM t")
[(1,)]
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Sequence
from typing import Any, Literal, TypeAlias

import psycopg
from psycopg.conninfo import make_conninfo

from ._text import mask_secrets
from ._wait import NotYet, connect_budget, poll_until
from .backends.base import Backend, NodeHandle, PeerAddress, StopMode, shown_dsn
from .backends.external import ExternalNode, Server
from .backends.select import open_backend
from .config import DEFAULT_TIMEOUT, Settings

log = logging.getLogger(__name__)

LsnKind = Literal["insert", "write", "flush", "receive", "replay"]
CatchupMode = Literal["receive", "replay"]

# The one map of WAL positions: what each kind is called in SQL.
_PRIMARY_LSN = {
    "insert": "pg_current_wal_insert_lsn()",
    "write": "pg_current_wal_lsn()",
    "flush": "pg_current_wal_flush_lsn()",
}
_STANDBY_LSN = {"receive": "pg_last_wal_receive_lsn()", "replay": "pg_last_wal_replay_lsn()"}
# Where an upstream stands, whether it is a primary or a standby (a cascade), as
# PostgreSQL's Cluster.pm takes it: its write LSN, or its replay LSN while in recovery.
_UPSTREAM_LSN = (
    f"SELECT (CASE WHEN pg_is_in_recovery() THEN {_STANDBY_LSN['replay']} "
    f"ELSE {_PRIMARY_LSN['write']} END)::text"
)


class Node:
    """One PostgreSQL server, wherever it lives (a process, a container, or someone
    else's server given by DSN)."""

    def __init__(self, handle: NodeHandle, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.handle = handle
        self.timeout = timeout

    # identity ---------------------------------------------------------------------------
    @property
    def name(self) -> str:
        """The node's name; a server given by bare DSN is named by its (masked) DSN."""
        return self.handle.name or shown_dsn(self.dsn)

    @property
    def label(self) -> str:
        """Name and masked DSN, for messages."""
        shown = shown_dsn(self.dsn)
        return f"{self.handle.name} ({shown})" if self.handle.name else shown

    @property
    def owned(self) -> bool:
        """Whether the harness started this server (False for external servers)."""
        return self.handle.owned

    @property
    def role(self) -> str:
        return self.handle.role

    @property
    def host(self) -> str:
        return self.handle.host

    @property
    def port(self) -> int:
        return self.handle.port

    @property
    def data_dir(self) -> str:
        return self.handle.data_dir

    @property
    def dsn(self) -> str:
        """A libpq conninfo string for this server, as seen from the test process."""
        return self.handle.dsn

    def container_name(self) -> str | None:
        """The Docker container the server runs in, or None."""
        return self.handle.container_name()

    def peer_address(self, peer: Node) -> PeerAddress:
        """How ``peer`` (a standby of this node) reaches it: host names, port, and how
        that is known (a Docker network's aliases, or this node's DSN)."""
        return self.handle.peer_address(peer.handle)

    def __repr__(self) -> str:
        return f"<Node {self.name} ({self.role}) {mask_secrets(self.dsn)}>"

    # SQL --------------------------------------------------------------------------------
    def connect(self, **kwargs: Any) -> psycopg.Connection[Any]:
        """A new autocommit psycopg connection; keyword arguments override conninfo keys.

        ``connect_timeout`` is bounded (at most 10 s) so that a frozen server cannot hang
        a wait."""
        kwargs.setdefault("connect_timeout", connect_budget(self.timeout))
        return psycopg.connect(make_conninfo(self.dsn, **kwargs), autocommit=True)

    def execute(
        self, sql: str, params: Sequence[Any] | None = None, **connect_kwargs: Any
    ) -> list[tuple[Any, ...]]:
        """Run one statement on a fresh connection; return its rows ([] if it has none)."""
        with self.connect(**connect_kwargs) as conn, conn.cursor() as cur:
            # bytes: psycopg's typing wants a literal query; ours are composed by callers
            cur.execute(sql.encode(), params)
            return cur.fetchall() if cur.description else []

    def query_value(
        self, sql: str, params: Sequence[Any] | None = None, **connect_kwargs: Any
    ) -> Any:
        """The first column of the first row, or None."""
        rows = self.execute(sql, params, **connect_kwargs)
        return rows[0][0] if rows else None

    def is_in_recovery(self) -> bool:
        return bool(self.query_value("SELECT pg_is_in_recovery()"))

    def lsn(self, kind: LsnKind) -> str | None:
        """A WAL position as text: ``insert``/``write``/``flush`` on a primary,
        ``receive``/``replay`` on a standby (None where the server has none)."""
        if kind in _STANDBY_LSN:
            return self.query_value(f"SELECT {_STANDBY_LSN[kind]}::text")  # type: ignore[no-any-return]
        if kind not in _PRIMARY_LSN:
            raise ValueError(
                f"unknown LSN kind {kind!r}; use insert, write, flush, receive or replay"
            )
        if self.is_in_recovery():
            raise ValueError(f"{self.name} is a standby; {kind} LSN exists only on a primary")
        return self.query_value(f"SELECT {_PRIMARY_LSN[kind]}::text")  # type: ignore[no-any-return]

    def poll_query_until(
        self, sql: str, expected: Any = True, timeout: float | None = None
    ) -> None:
        """Run ``sql`` until its first value equals ``expected`` (bounded, fast polling)."""
        budget = connect_budget(timeout or self.timeout)

        def check() -> bool:
            value = self.query_value(sql, connect_timeout=budget)
            if value != expected:
                raise NotYet(f"returned {value!r}")
            return True

        poll_until(
            check,
            what=f"`{sql}` on {self.name} to return {expected!r}",
            timeout=timeout or self.timeout,
            log=self.log,
        )

    def wait_for_catchup(
        self,
        standby: Node,
        mode: CatchupMode = "replay",
        target_lsn: str | None = None,
        timeout: float | None = None,
    ) -> str:
        """Wait until ``standby`` has received or replayed this node's current WAL position
        (or ``target_lsn``). This node may itself be a standby (a cascade): its position is
        then its replay LSN. Returns the target. The timeout error names both LSNs."""
        if mode not in _STANDBY_LSN:
            raise ValueError(f"unknown mode {mode!r}; use 'replay' or 'receive'")
        budget = connect_budget(timeout or self.timeout)
        target = target_lsn or self.query_value(_UPSTREAM_LSN, connect_timeout=budget)
        column = _STANDBY_LSN[mode]

        def check() -> bool:
            row = standby.execute(
                f"SELECT {column}::text, {column} >= %s::pg_lsn", [target], connect_timeout=budget
            )[0]
            if not row[1]:
                raise NotYet(f"{standby.name} {mode} LSN {row[0]}, target {target}")
            return True

        poll_until(
            check,
            what=f"{standby.name} to {mode} up to {target} of {self.name}",
            timeout=timeout or self.timeout,
            log=standby.log,
        )
        return str(target)

    def promote(self, timeout: float | None = None) -> None:
        """Promote a standby to primary and wait until it accepts writes."""
        self.handle.refuse_unless_owned("promote")
        secs = int(timeout or self.timeout)
        self.execute(f"SELECT pg_promote(wait => true, wait_seconds => {secs})")
        self.poll_query_until("SELECT pg_is_in_recovery()", False, timeout)

    # process control and files ---------------------------------------------------------
    def stop(self, mode: StopMode = "fast") -> None:
        self.handle.stop(mode, self.timeout)

    def start(self) -> None:
        self.handle.start()

    def restart(self, mode: StopMode = "fast") -> None:
        self.handle.refuse_unless_owned("restart")
        self.stop(mode)
        self.start()

    def kill(self) -> None:
        """Kill the server with SIGKILL, as a crash would."""
        self.handle.kill()

    def is_running(self) -> bool:
        return self.handle.is_running()

    def read_file(self, relpath: str) -> str:
        """A file of the data directory, e.g. ``node.read_file("postgresql.auto.conf")``."""
        return self.handle.read_file(relpath)

    def file_exists(self, relpath: str) -> bool:
        return self.handle.exists(relpath)

    def file_location(self, relpath: str = "") -> str:
        """Where a file of the data directory lives (``container:path`` in Docker)."""
        return self.handle.file_location(relpath)

    def log(self) -> str:
        """The server's log so far."""
        return self.handle.log()

    def setup_output(self) -> str:
        """What the lab script printed while making this node (initdb + setup-primary.sh,
        or setup-standby.sh with pg_basebackup's progress)."""
        return self.handle.setup_output()


class Cluster:
    """A primary and its standbys, built by one backend. A context manager."""

    def __init__(self, settings: Settings, backend: Backend, reason: str = "") -> None:
        self.settings = settings
        self.backend = backend
        self.reason = reason
        self.primary: Node
        self.standbys: list[Node] = []
        self._closed = False

    @property
    def standby(self) -> Node:
        """The first standby."""
        return self.standbys[0]

    @property
    def nodes(self) -> list[Node]:
        return [self.primary, *self.standbys]

    def build(self) -> Cluster:
        """Bring the nodes up; a standby counts once its WAL receiver streams. Servers the
        harness did not start are taken as they are: they need only accept connections."""
        t = self.settings.timeout
        self.primary = Node(self.backend.create_primary("primary"), t)
        for i in range(1, self.settings.standby_count + 1):
            standby = Node(self.backend.create_standby(f"standby{i}", self.primary.handle), t)
            self.standbys.append(standby)
            if standby.owned:
                standby.poll_query_until(
                    "SELECT status FROM pg_stat_wal_receiver", "streaming", timeout=t
                )
            else:
                standby.handle.wait_ready()
        self.primary.handle.wait_ready()
        return self

    def describe(self) -> str:
        return self.backend.describe() + (f" [{self.reason}]" if self.reason else "")

    def logs(self, max_lines: int = 200) -> dict[str, str]:
        """The tail of each node's server log and setup output, masked."""
        out: dict[str, str] = {}
        if not hasattr(self, "primary"):  # the build failed before the primary existed
            return out
        for node in self.nodes:
            for label, read in (("setup", node.setup_output), ("log", node.log)):
                try:
                    lines = read().splitlines()[-max_lines:]
                    out[f"{node.name} {label}"] = mask_secrets("\n".join(lines))
                except OSError as exc:
                    out[f"{node.name} {label}"] = f"(unreadable: {exc})"
        return out

    def close(self, keep: bool = False) -> None:
        if not self._closed:
            self._closed = True
            self.backend.close(keep=keep)

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        self.close(keep=self.settings.keeps(failed=exc_type is not None))


def build_cluster(settings: Settings) -> Cluster:
    """Open the backend the settings ask for and bring the nodes up; the caller closes it."""
    backend, reason = open_backend(settings)
    cluster = Cluster(settings, backend, reason)
    try:
        cluster.build()
    except BaseException:
        cluster.close(keep=settings.keeps(failed=True))
        raise
    return cluster


ServerLike: TypeAlias = Node | Server | str


def as_node(server: ServerLike, role: str = "server", timeout: float | None = None) -> Node:
    """A Node for a Node (itself), a ``Server(...)`` or a plain DSN (an external node: the
    harness reads it and never changes it). ``role`` names the argument in messages."""
    if isinstance(server, Node):
        return server
    if isinstance(server, str):
        server = Server(server)
    if not isinstance(server, Server):
        raise TypeError(
            f"{role} must be a Node, a Server or a libpq DSN string, not {type(server).__name__}"
        )
    t = timeout or DEFAULT_TIMEOUT
    return Node(ExternalNode(server, role=role, timeout=t), t)


@contextlib.contextmanager
def start_cluster(settings: Settings | None = None, **overrides: Any) -> Iterator[Cluster]:
    """Bring up a primary and ``standbys`` standbys per the documented procedure.

    Usable without pytest: ``with start_cluster(backend="local", standbys=1) as c: ...``.
    With ``keep="on-failure"`` the servers stay up when the ``with`` body raises (the next
    session sweeps them); ``keep="always"`` keeps them in any case.
    """
    cluster = build_cluster((settings or Settings()).with_overrides(**overrides))
    with cluster:
        yield cluster
