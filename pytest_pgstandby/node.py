"""Node: one PostgreSQL server and the DBA's vocabulary for it, wherever it lives (a
process, a container, or someone else's server given by DSN). Each verb is written once,
here or in the modules it inherits from (node_core.py, node_checks.py,
node_recovery.py), on the backend handle's few primitives: no backend defines a verb.

Knows replication and SQL; knows nothing of pytest nor of where a node lives: that is
the backend handle's business.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any, TypeAlias

import psycopg
from psycopg import sql as pgsql
from psycopg.conninfo import make_conninfo

from ._wait import poll_until
from .backends.base import conninfo_params
from .backends.external import ExternalNode, Server
from .config import DEFAULT_TIMEOUT
from .errors import ConfigurationError
from .node_checks import CheckVerbs
from .node_core import _TIMELINE, CatchupMode, LsnKind, NodeCore, journaled
from .node_recovery import Backup, RecoveryVerbs

log = logging.getLogger(__name__)

__all__ = ["Backup", "CatchupMode", "LsnKind", "Node", "ServerLike", "as_node"]


class Node(RecoveryVerbs, CheckVerbs, NodeCore):
    """One PostgreSQL server, wherever it lives (a process, a container, or someone
    else's server given by DSN)."""

    @journaled
    def promote(self, timeout: float | None = None) -> None:
        """Promote a standby to primary and wait until it accepts writes."""
        self.handle.refuse_unless_owned("promote")
        self._must_be(True, "promote()", "promote a standby (cluster.standby.promote())")
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
        with self._admin_connection() as conn:
            self._reload_on(conn)

    def _reload_on(self, conn: psycopg.Connection[Any]) -> None:
        """Reload, and wait until ``conn``'s own backend has read the files again (it does
        at its next statement after the SIGHUP, as every other backend)."""
        loaded = conn.execute("SELECT pg_conf_load_time()").fetchone()
        conn.execute("SELECT pg_reload_conf()")
        since = loaded[0] if loaded else 0
        poll_until(
            lambda: _one(conn, "SELECT pg_conf_load_time() > %s::timestamptz", [since]),
            what=f"{self.name} to reload its configuration",
            timeout=self.timeout,
            log=self.log,
        )

    @journaled
    def set_conf(self, /, **gucs: Any) -> list[str]:
        """``ALTER SYSTEM SET`` each setting (``None`` resets it), then reload. Returns the
        names of those that still need a restart (``pg_settings.pending_restart``); a
        warning names them too.

        >>> primary.set_conf(synchronous_standby_names="standby1", wal_keep_size="64MB")
        []                                                               # doctest: +SKIP
        """
        self.handle.refuse_unless_owned("change the settings of")
        with self._admin_connection() as conn:  # the kept one (~15 ms each through Docker)
            fixed = _settings_where(conn, "source = 'command line'", gucs)
            if fixed:
                raise ConfigurationError(
                    f"{', '.join(fixed)} of {self.name} is given on its server's command line "
                    "(by the harness: ports, cluster_name, a slot from add_standby(slot=True)), "
                    "which ALTER SYSTEM cannot override. Fix: leave it to the harness, or add a "
                    "standby without slot=True and set_conf(primary_slot_name=...) on that one."
                )
            for name, value in gucs.items():
                if value is None:
                    conn.execute(pgsql.SQL("ALTER SYSTEM RESET {}").format(pgsql.Identifier(name)))
                else:
                    conn.execute(
                        pgsql.SQL("ALTER SYSTEM SET {} = {}").format(
                            pgsql.Identifier(name), pgsql.Literal(str(value))
                        )
                    )
            self._reload_on(conn)
            pending = _settings_where(conn, "pending_restart", gucs)
        if pending:
            log.warning("%s: %s take effect at the next restart", self.name, ", ".join(pending))
        return pending

    # replication slots ------------------------------------------------------------------
    @journaled
    def create_slot(self, name: str) -> None:
        """A physical replication slot that reserves WAL from now on."""
        self.handle.refuse_unless_owned("create a replication slot on")
        self.execute("SELECT pg_create_physical_replication_slot(%s, true)", [name])

    @journaled
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
    @journaled
    def follow(self, upstream: Node, timeout: float | None = None) -> None:
        """Re-point this standby at ``upstream`` (a new primary after a promote, or another
        standby): its effective ``primary_conninfo`` gets the upstream's address as this
        server reaches it, the configuration is reloaded, and this returns once the WAL
        receiver streams from there.

        A standby that streams through a slot (``slots=True``, the hardened profile) gets
        a slot of the same name on ``upstream`` first, as Patroni does: slots are not
        replicated, so a promoted standby has none. The harness drops it at teardown."""
        self.handle.refuse_unless_owned("re-point")
        params = conninfo_params(str(self.query_value("SHOW primary_conninfo") or ""))
        slot = str(self.query_value("SHOW primary_slot_name") or "")
        if slot and upstream.slot(slot) is None:
            upstream.create_slot(slot)
            self.slots_made.append((upstream, slot))
        addr = upstream.peer_address(self)
        params.update(host=addr.hosts[0], port=addr.port)
        self.set_conf(primary_conninfo=make_conninfo("", **params))
        self.poll_query_until(
            "SELECT status = 'streaming' AND sender_port = %s FROM pg_stat_wal_receiver",
            True,
            timeout,
            params=[int(addr.port)],
        )

    @journaled
    def partition(self) -> None:
        """Cut this standby's replication link to its upstream, and only that: the test
        process still queries both. The first call routes the link through a relay on the
        standby's side (its ``primary_conninfo`` is re-pointed there and it reconnects);
        each call then stops the relay, so no byte crosses while the connection stays
        open, as across a cut network link. ``heal()`` lets the bytes flow again."""
        self.handle.refuse_unless_owned("partition")
        self._must_be(
            True, "partition()", "partition() a standby: it cuts that standby off its upstream"
        )
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
        self.cut = True

    @journaled
    def heal(self) -> None:
        """Undo ``partition()``: the link carries bytes again, and the standby catches up
        on the connection it kept (or a new one, if either side gave up meanwhile)."""
        self.handle.refuse_unless_owned("heal")
        if not self.cut:
            raise ConfigurationError(
                f"heal() of {self.name}: nothing is cut (partition() was not called on it, "
                "or heal() ran already). Fix: partition() first; to restart a stopped server, "
                "start()."
            )
        self.handle.mend_relay()
        self.cut = False


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


def _settings_where(
    conn: psycopg.Connection[Any], condition: str, names: Iterable[str]
) -> list[str]:
    """Which of ``names`` pg_settings shows with ``condition`` (a fixed SQL fragment)."""
    query = f"SELECT name FROM pg_settings WHERE {condition} AND name = ANY(%s)"
    return [str(row[0]) for row in conn.execute(query.encode(), [list(names)]).fetchall()]


def _one(conn: psycopg.Connection[Any], sql: str, params: list[Any]) -> Any:
    row = conn.execute(sql.encode(), params).fetchone()
    return row[0] if row else None
