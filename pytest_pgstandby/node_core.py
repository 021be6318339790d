"""NodeCore: one PostgreSQL server as the model sees it (identity, SQL, bounded waits,
process control and files over the backend handle's primitives); the verbs of
``Node`` build on it (node.py, node_checks.py, node_recovery.py).

Knows replication and SQL; knows nothing of pytest nor of where a node lives: that is
the backend handle's business.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Concatenate, Literal, ParamSpec, TypeVar

import psycopg
from psycopg.conninfo import make_conninfo

from ._held import HeldConnection
from ._text import mask_secrets
from ._wait import NotYet, connect_budget, poll_until
from .backends.base import NodeHandle, PeerAddress, Reach, StopMode, shown_dsn
from .config import DEFAULT_TIMEOUT
from .connections import params_of, url_of
from .diagnosis import LogWatch
from .errors import ServerDownError, SetupFailedError, WrongRoleError

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
# wal_status is PostgreSQL 13's: through jsonb, 12 answers false rather than an error
_ANY_SLOT_LOST = (
    "SELECT EXISTS (SELECT FROM pg_replication_slots s WHERE to_jsonb(s)->>'wal_status' = 'lost')"
)
_UPSTREAM_LSN = (
    f"SELECT (CASE WHEN pg_is_in_recovery() THEN {_STANDBY_LSN['replay']} "
    f"ELSE {_PRIMARY_LSN['write']} END)::text"
)


_N = TypeVar("_N", bound="NodeCore")
_IN_VERB = contextvars.ContextVar("pgstandby_in_verb", default=0)
_P = ParamSpec("_P")
_R = TypeVar("_R")


def journaled(verb: Callable[Concatenate[_N, _P], _R]) -> Callable[Concatenate[_N, _P], _R]:
    """A verb that changes a server's state or the cluster's shape: noted (node, verb) in
    the node's journal, its cluster's, done or failed half-way, so that a cluster shared
    by several tests can be put back after one that changed it (healing.py)."""

    @functools.wraps(verb)
    def noted(self: _N, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        outermost = _IN_VERB.get() == 0  # restart's stop and start are part of restart
        token = _IN_VERB.set(_IN_VERB.get() + 1)
        try:
            return verb(self, *args, **kwargs)
        finally:
            _IN_VERB.reset(token)
            if outermost and self.journal is not None:
                self.journal.append((self.name, verb.__name__))

    return noted


class NodeCore:
    """What every verb of a ``Node`` stands on."""

    def __init__(self, handle: NodeHandle, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.handle = handle
        self.timeout = timeout
        self._version: tuple[str, int] | None = None
        self._held: HeldConnection | None = None  # waits' connection to a harness server
        #: (upstream, slot) made for this node's streaming (a Cluster shares its own list)
        self.slots_made: list[tuple[Any, str]] = []
        #: (node, verb) of each state-changing verb (``journaled``; a Cluster shares its own)
        self.journal: list[tuple[str, str]] | None = None
        self.cut = False  # partition() cut this standby's link; heal() mends it

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
        """``primary`` or ``standby`` as the server says now (``pg_is_in_recovery()``), so
        that a promote() or a rewind() shows; the role the harness was told where the
        server does not answer (stopped, or an external server's role name)."""
        try:
            return "standby" if self.is_in_recovery() else "primary"
        except psycopg.Error:
            return self.handle.role

    @property
    def given_data_dir(self) -> str:
        """The data directory the harness made or was told for this server ("" when it
        is only guessed, as for a bare DSN or a container's PGDATA)."""
        return self.handle.given_data_dir

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

    def params(self, dbname: str | None = None) -> dict[str, Any]:
        """host, port, user, password and dbname: ``psycopg.connect(**node.params())``;
        asyncpg with ``database=p["dbname"]``; Django's ``DATABASES`` (docs/applications.md)."""
        return params_of(self.dsn, dbname)

    def url(self, driver: str | None = "psycopg", dbname: str | None = None, **query: Any) -> str:
        """A SQLAlchemy URL (``postgresql+psycopg://user:password@host:port/dbname``),
        the password quoted: ``create_engine(node.url())``. ``driver``: psycopg,
        psycopg2, asyncpg, pg8000, psycopg_async, or None for a plain libpq URI."""
        return url_of(self.dsn, driver, dbname, **query)

    def container_name(self) -> str | None:
        """The Docker container the server runs in, or None."""
        return self.handle.container_name()

    def peer_address(self, peer: NodeCore) -> PeerAddress:
        """How ``peer`` (a standby of this node) reaches it: host names, port, and how
        that is known (a Docker network's aliases, or this node's DSN)."""
        return self.handle.peer_address(peer.handle)

    def __repr__(self) -> str:
        return f"<Node {self.name} {mask_secrets(self.dsn)}>"

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

    @contextlib.contextmanager
    def _admin_connection(self) -> Iterator[psycopg.Connection[Any]]:
        """A verb's connection (set_conf, reload): the waits' kept one on a harness server
        (a new one costs ~5 ms on loopback, ~15 ms through Docker); else one of its own."""
        if not self.owned:
            with self.connect() as conn:
                yield conn
            return
        with self._wait_connection(connect_budget(self.timeout)) as held:
            held.row("SELECT 1")  # made now, or anew if the server restarted since
            try:
                yield held.conn  # type: ignore[misc]  # row() made it
            except psycopg.Error:
                held.close()
                raise

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

    def admin(self, sql: str, params: Sequence[Any] | None = None) -> None:
        """Run one statement in the ``postgres`` database on the connection this node's
        waits keep (no new connection: ~5 ms on loopback, ~15 ms through Docker's port
        proxy); the statement may take the node's whole timeout."""
        with self._wait_connection(connect_budget(self.timeout)) as held:
            held.row(sql, params, bound=max(1, int(self.timeout)))

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
        if self._version is None:  # on the waits' connection: a build asks it last
            with self._wait_connection(connect_budget(self.timeout)) as held:
                row = held.row(
                    "SELECT current_setting('server_version'),"
                    " current_setting('server_version_num')::int"
                )
            assert row is not None
            self._version = (str(row[0]), int(row[1]))
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
        also: Callable[[], str | None] | None = None,
    ) -> None:
        """Poll ``check`` on this node's held wait connection (each query bounded by the
        connect budget), watching the node's log for a failure that ends the wait (and
        ``also``, another watch that may end it)."""
        budget = connect_budget(timeout or self.timeout)
        watch = LogWatch(self.log)
        with self._wait_connection(budget) as held:
            poll_until(
                lambda: check(held, budget),
                what=what,
                timeout=timeout or self.timeout,
                log=self.log,
                abort=lambda: watch() or (also() if also else None),
            )

    def wait_for_catchup(
        self,
        standby: NodeCore,
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
            try:
                with self._wait_connection(budget) as upstream:
                    row = upstream.row(_UPSTREAM_LSN, bound=budget)
                    target = row[0] if row else None
            except psycopg.OperationalError:
                self._refuse_down(f"wait_for_catchup({standby.name})", "its current WAL position")
                raise
        column = _STANDBY_LSN[mode]

        def check(held: HeldConnection, bound: int) -> bool:
            try:
                row = held.row(f"SELECT {column}::text, {column} >= %s::pg_lsn", [target], bound)
            except psycopg.OperationalError:
                standby._refuse_down(f"{self.name}.wait_for_catchup", "its replay position")
                raise
            assert row is not None
            if row[0] is None and not standby.is_in_recovery():
                raise WrongRoleError(
                    f"{self.name}.wait_for_catchup({standby.name}): {standby.name} is a "
                    "primary (not in recovery), which replays nothing. Fix: ask the upstream "
                    f"for its standby, {standby.name}.wait_for_catchup({self.name}), if "
                    f"{self.name} streams from {standby.name}."
                )
            if not row[1]:
                raise NotYet(f"{standby.name} {mode} LSN {row[0]}, target {target}")
            return True

        what = f"{standby.name} to {mode} up to {target} of {self.name}"
        found: list[str] = []  # what the slot watch found, if it ended the wait
        try:
            standby._poll_held(check, what, timeout, also=self._slot_watch(standby, budget, found))
        except SetupFailedError as exc:
            lost = found[0] if found else self.lost_slot_reason(standby)
            if lost is None:
                raise
            raise SetupFailedError(f"{lost}\n{exc}") from None
        return str(target)

    def _refuse_down(self, verb: str, needs: str) -> None:
        """A connection to this node failed: if the harness started it and it is not
        running now, say so at once (else the caller re-raises the driver's error)."""
        if self.owned and not self.is_running():
            raise ServerDownError(
                f"{verb}: {self.name} is not running (stopped or killed since it started), "
                f"and the wait needs {needs}. Fix: {self.name}.start() first, or, after a "
                "failover, wait on the promoted standby instead."
            ) from None

    def _slot_watch(
        self, standby: NodeCore, budget: int, found: list[str]
    ) -> Callable[[], str | None]:
        """A wait's watch for a lost slot, asked every 0.5 s from the wait's first 0.5 s
        on (one query on this node's kept connection): the standby's log says so only when
        its WAL receiver retries, and the first refusal comes before a LogWatch's first
        look, so the wait saw the second, a wal_retrieve_retry_interval later. The reason
        it finds goes in ``found``."""
        next_look = [time.monotonic() + 0.5]

        def lost() -> str | None:
            if time.monotonic() < next_look[0]:
                return None
            next_look[0] = time.monotonic() + 0.5
            try:
                with self._wait_connection(budget) as held:
                    row = held.row(_ANY_SLOT_LOST, bound=budget)
            except psycopg.Error:
                return None
            reason = self.lost_slot_reason(standby) if row and row[0] else None
            if reason is None:
                return None
            found.append(reason)
            return f"the slot it streams through on {self.name} is lost (wal_status)"

        return lost

    def lost_slot_reason(self, standby: NodeCore) -> str | None:
        """Why ``standby``, streaming from this node through a slot, cannot get the WAL it
        needs: its slot here was invalidated (``wal_status`` lost, PostgreSQL 13+), with
        the fix; None if it was not (wait_for_catchup and the doctor ask)."""
        try:
            slot = str(standby.query_value("SHOW primary_slot_name") or "")
            row = self.execute(
                "SELECT current_setting('max_slot_wal_keep_size') FROM pg_replication_slots "
                "WHERE slot_name = %s AND wal_status = 'lost'",
                [slot],
            )
        except psycopg.Error:
            return None
        if not slot or not row:
            return None
        return (
            f"{standby.name}'s replication slot {slot!r} on {self.name} was invalidated "
            f"(wal_status lost): the standby fell further behind than max_slot_wal_keep_size"
            f"={row[0][0]} allows, and the WAL it needs is gone. Fix: standby.reclone() (the "
            f"slot keeps its name; drop and create it again on {self.name} if the rebuilt "
            "standby must stream through it), and a larger max_slot_wal_keep_size (-1: no "
            "limit) if it must survive falling that far behind."
        )

    # process control and files ---------------------------------------------------------
    @journaled
    def pause(self) -> None:
        """Freeze the whole server (SIGSTOP of every process; ``docker pause``), as a
        hung machine would: it neither answers nor replies to its peers."""
        self.handle.pause()

    @journaled
    def resume(self) -> None:
        self.handle.resume()

    @journaled
    def stop(self, mode: StopMode = "fast") -> None:
        self.close_connections()  # a smart shutdown would wait for it
        self.handle.stop(mode, self.timeout)

    @journaled
    def start(self) -> None:
        self.close_connections()
        self.handle.start()

    @journaled
    def restart(self, mode: StopMode = "fast") -> None:
        self.handle.refuse_unless_owned("restart")
        self.stop(mode)
        self.start()

    @journaled
    def kill(self) -> None:
        """Kill the server with SIGKILL, as a crash would."""
        self.close_connections()
        self.handle.kill()

    @journaled
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
