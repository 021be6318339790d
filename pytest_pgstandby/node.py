"""Node: one PostgreSQL server and the DBA's vocabulary for it, wherever it lives (a
process, a container, or someone else's server given by DSN).

Knows replication and SQL; knows nothing of pytest nor of where a node lives: that is
the backend handle's business.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, Literal, TypeAlias

import psycopg
from psycopg import sql as pgsql
from psycopg.conninfo import make_conninfo

from ._held import HeldConnection
from ._text import mask_secrets
from ._wait import NotYet, connect_budget, poll_until
from .backends.base import NodeHandle, PeerAddress, Reach, StopMode, conninfo_params, shown_dsn
from .backends.external import ExternalNode, Server
from .config import DEFAULT_TIMEOUT
from .diagnosis import LogWatch
from .errors import ConfigurationError

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
_TIMELINE = """
SELECT CASE WHEN NOT pg_is_in_recovery()
            THEN ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int
            ELSE coalesce((SELECT received_tli FROM pg_stat_wal_receiver),
                          (SELECT timeline_id FROM pg_control_checkpoint()))
       END
"""
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
        self._version: tuple[str, int] | None = None
        self._held: HeldConnection | None = None  # waits' connection to a harness server

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
    @contextlib.contextmanager
    def _wait_connection(self, connect_timeout: int) -> Iterator[HeldConnection]:
        """The connection a wait polls on. A harness server's is kept between waits (a
        wait then opens no connection at all: ~5 ms each on loopback); another server's
        lasts one wait. Dropped on an error, and before this node stops or starts."""
        if not self.owned:
            with HeldConnection(self.connect, connect_timeout) as held:
                yield held
            return
        if self._held is None:
            self._held = HeldConnection(self.connect, connect_budget(self.timeout))
        yield self._held

    def close_connections(self) -> None:
        """Close the connection waits keep open on this server (teardown does this)."""
        if self._held is not None:
            self._held.close()

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

    def server_version_num(self) -> int:
        """``server_version_num`` (e.g. 150018), asked once per node."""
        return self._versions()[1]

    def server_version(self) -> str:
        """``server_version`` as the server prints it (``15.14 (Debian 15.14-0+deb12u1)``),
        asked once per node."""
        return self._versions()[0]

    def _versions(self) -> tuple[str, int]:
        if self._version is None:
            text, num = self.execute(
                "SELECT current_setting('server_version'),"
                " current_setting('server_version_num')::int"
            )[0]
            self._version = (str(text), int(num))
        return self._version

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
        self,
        sql: str,
        expected: Any = True,
        timeout: float | None = None,
        params: Sequence[Any] | None = None,
    ) -> None:
        """Run ``sql`` (with ``params``) until its first value equals ``expected``
        (bounded, fast polling); the timeout error says what it last returned."""

        def check(held: HeldConnection, budget: int) -> bool:
            row = held.row(sql, params, budget)
            value = row[0] if row else None
            if value != expected:
                raise NotYet(f"returned {value!r}")
            return True

        self._poll_held(check, f"`{sql}` on {self.name} to return {expected!r}", timeout)

    def _poll_held(
        self,
        check: Callable[[HeldConnection, int], bool],
        what: str,
        timeout: float | None,
    ) -> None:
        """Poll ``check`` on this node's held wait connection (each query bounded by the
        connect budget), watching the node's log for a failure that ends the wait."""
        budget = connect_budget(timeout or self.timeout)
        with self._wait_connection(budget) as held:
            poll_until(
                lambda: check(held, budget),
                what=what,
                timeout=timeout or self.timeout,
                log=self.log,
                abort=LogWatch(self.log),
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
        target: Any = target_lsn
        if not target:
            with self._wait_connection(budget) as upstream:
                row = upstream.row(_UPSTREAM_LSN, bound=budget)
                target = row[0] if row else None
        column = _STANDBY_LSN[mode]

        def check(held: HeldConnection, bound: int) -> bool:
            row = held.row(f"SELECT {column}::text, {column} >= %s::pg_lsn", [target], bound)
            assert row is not None
            if not row[1]:
                raise NotYet(f"{standby.name} {mode} LSN {row[0]}, target {target}")
            return True

        what = f"{standby.name} to {mode} up to {target} of {self.name}"
        standby._poll_held(check, what, timeout)
        return str(target)

    def promote(self, timeout: float | None = None) -> None:
        """Promote a standby to primary and wait until it accepts writes."""
        self.handle.refuse_unless_owned("promote")
        secs = int(timeout or self.timeout)
        self.execute(f"SELECT pg_promote(wait => true, wait_seconds => {secs})")
        self.poll_query_until("SELECT pg_is_in_recovery()", False, timeout)

    def timeline(self) -> int:
        """The timeline this server is on now: a primary's current WAL file's timeline
        (right after a promote, the new one), a standby's streamed timeline, else its last
        restartpoint's."""
        return int(self.query_value(_TIMELINE))

    # configuration ----------------------------------------------------------------------
    def reload(self) -> None:
        """``pg_reload_conf()``, and wait until new sessions see the reloaded files."""
        self.handle.refuse_unless_owned("reload")
        with self.connect() as conn:
            loaded = conn.execute("SELECT pg_conf_load_time()").fetchone()
            conn.execute("SELECT pg_reload_conf()")
        self.poll_query_until(
            f"SELECT pg_conf_load_time() > '{loaded[0] if loaded else 0}'::timestamptz",
            True,
        )

    def set_conf(self, **gucs: Any) -> list[str]:
        """``ALTER SYSTEM SET`` each setting (``None`` resets it), then reload. Returns the
        names of those that still need a restart (``pg_settings.pending_restart``); a
        warning names them too.

        >>> primary.set_conf(synchronous_standby_names="standby1", wal_keep_size="64MB")
        []                                                               # doctest: +SKIP
        """
        self.handle.refuse_unless_owned("change the settings of")
        fixed = self._settings_where("source = 'command line'", gucs)
        if fixed:
            raise ConfigurationError(
                f"{', '.join(fixed)} of {self.name} is given on its server's command line (by "
                "the harness: ports, cluster_name, a slot from add_standby(slot=True)), which "
                "ALTER SYSTEM cannot override. Fix: leave it to the harness, or add a standby "
                "without slot=True and set_conf(primary_slot_name=...) on that one."
            )
        with self.connect() as conn:
            for name, value in gucs.items():
                if value is None:
                    conn.execute(pgsql.SQL("ALTER SYSTEM RESET {}").format(pgsql.Identifier(name)))
                else:
                    conn.execute(
                        pgsql.SQL("ALTER SYSTEM SET {} = {}").format(
                            pgsql.Identifier(name), pgsql.Literal(str(value))
                        )
                    )
        self.reload()
        pending = self._settings_where("pending_restart", gucs)
        if pending:
            log.warning("%s: %s take effect at the next restart", self.name, ", ".join(pending))
        return pending

    def _settings_where(self, condition: str, names: Iterable[str]) -> list[str]:
        """Which of ``names`` pg_settings shows with ``condition`` (a fixed SQL fragment)."""
        query = f"SELECT name FROM pg_settings WHERE {condition} AND name = ANY(%s)"
        return [str(row[0]) for row in self.execute(query, [list(names)])]

    # replication slots ------------------------------------------------------------------
    def create_slot(self, name: str) -> None:
        """A physical replication slot that reserves WAL from now on."""
        self.handle.refuse_unless_owned("create a replication slot on")
        self.execute("SELECT pg_create_physical_replication_slot(%s, true)", [name])

    def drop_slot(self, name: str) -> None:
        self.handle.refuse_unless_owned("drop a replication slot of")
        self.execute("SELECT pg_drop_replication_slot(%s)", [name])

    def slot(self, name: str) -> dict[str, Any] | None:
        """The slot's ``pg_replication_slots`` row, or None."""
        with self.connect() as conn, conn.cursor() as cur:
            cur.execute("SELECT * FROM pg_replication_slots WHERE slot_name = %s", [name])
            row = cur.fetchone()
            if row is None or cur.description is None:
                return None
            return dict(zip([c.name for c in cur.description], row, strict=True))

    # topology ---------------------------------------------------------------------------
    def follow(self, upstream: Node, timeout: float | None = None) -> None:
        """Re-point this standby at ``upstream`` (a new primary after a promote, or another
        standby): its effective ``primary_conninfo`` gets the upstream's address as this
        server reaches it, the configuration is reloaded, and this returns once the WAL
        receiver streams from there."""
        self.handle.refuse_unless_owned("re-point")
        params = conninfo_params(str(self.query_value("SHOW primary_conninfo") or ""))
        addr = upstream.peer_address(self)
        params.update(host=addr.hosts[0], port=addr.port)
        self.set_conf(primary_conninfo=make_conninfo("", **params))
        self.poll_query_until(
            "SELECT status = 'streaming' AND sender_port = %s FROM pg_stat_wal_receiver",
            True,
            timeout,
            params=[int(addr.port)],
        )

    def partition(self) -> None:
        """Cut this standby's replication link to its upstream, and only that: the test
        process still queries both. The first call routes the link through a relay on the
        standby's side (its ``primary_conninfo`` is re-pointed there and it reconnects);
        each call then stops the relay, so no byte crosses while the connection stays
        open, as across a cut network link. ``heal()`` lets the bytes flow again."""
        self.handle.refuse_unless_owned("partition")
        params = conninfo_params(str(self.query_value("SHOW primary_conninfo") or ""))
        host, port = params.get("host") or "", params.get("port") or "5432"
        relay_host, relay_port = self.handle.open_relay(host, port)
        if (host, port) != (relay_host, relay_port):
            params.update(host=relay_host, port=relay_port)
            self.set_conf(primary_conninfo=make_conninfo("", **params))
            self.poll_query_until(
                "SELECT status = 'streaming' AND sender_port = %s FROM pg_stat_wal_receiver",
                params=[int(relay_port)],
            )
        self.handle.cut_relay()

    def heal(self) -> None:
        """Undo ``partition()``: the link carries bytes again, and the standby catches up
        on the connection it kept (or a new one, if either side gave up meanwhile)."""
        self.handle.refuse_unless_owned("heal")
        self.handle.mend_relay()

    # process control and files ---------------------------------------------------------
    def pause(self) -> None:
        """Freeze the whole server (SIGSTOP of every process; ``docker pause``), as a
        hung machine would: it neither answers nor replies to its peers."""
        self.handle.pause()

    def resume(self) -> None:
        self.handle.resume()

    def stop(self, mode: StopMode = "fast") -> None:
        self.close_connections()  # a smart shutdown would wait for it
        self.handle.stop(mode, self.timeout)

    def start(self) -> None:
        self.close_connections()
        self.handle.start()

    def restart(self, mode: StopMode = "fast") -> None:
        self.handle.refuse_unless_owned("restart")
        self.stop(mode)
        self.start()

    def kill(self) -> None:
        """Kill the server with SIGKILL, as a crash would."""
        self.close_connections()
        self.handle.kill()

    def reclone(self) -> None:
        """Rebuild this standby by the documented procedure: ``setup-standby.sh`` runs on
        it again (it empties the data directory and takes a new base backup; what a
        container restart does in the seed's setup). Returns once it streams. Unlike
        ``restart()``, nothing of its own data survives."""
        self.handle.refuse_unless_owned("reclone")
        self.close_connections()
        self.handle.reclone()
        self.poll_query_until("SELECT status FROM pg_stat_wal_receiver", "streaming")

    def is_running(self) -> bool:
        return self.handle.is_running()

    def reach(self, host: str, port: int) -> Reach:
        """Resolve ``host`` and reach ``port`` from the server's side (its container, or
        this machine): the seed's "verify network connectivity"."""
        return self.handle.reach(host, port)

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
