"""Cluster: a primary and its standbys, every standby made by the documented script, in
any shape (cascades, slots, synchronous standbys). Knows replication; knows nothing of
pytest nor of where a node lives.

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
import re
from collections.abc import Iterator
from typing import Any

import psycopg
from psycopg.conninfo import make_conninfo

from ._text import mask_secrets
from .backends.base import Backend, NodeHandle, conninfo_params
from .backends.select import built, open_backend
from .config import Settings
from .connections import multi_host
from .diagnosis import explain
from .errors import (
    ConfigurationError,
    NotOwnedError,
    PgStandbyError,
    SetupFailedError,
    TooManyStandbysError,
    VersionMismatchError,
)
from .node import Backup, Node

log = logging.getLogger(__name__)

KEPT_WAL = "128MB"  # WAL every harness node keeps for a rewind after a failover (RewindTest.pm)
# a WAL receiver that lost its upstream retries after 0.5 s, as in Cluster.pm (not 5 s)
HARNESS_CONF = {"wal_keep_size": KEPT_WAL, "wal_retrieve_retry_interval": "500ms"}
_NODE_NAME = re.compile(r"[a-z][a-z0-9_]{0,62}")  # also a slot and application name
#: describe_servers() of each cluster built in this process since the last take_built()
_BUILT: list[str] = []


def take_built() -> list[str]:
    """The servers of the clusters built since the last call (the pytest plugin asks
    after each phase of a test, so a cluster a test builds itself is counted too)."""
    built = _BUILT[:]
    _BUILT.clear()
    return built


class Cluster:
    """A primary and its standbys, built by one backend. A context manager."""

    def __init__(self, settings: Settings, backend: Backend, reason: str = "") -> None:
        self.settings = settings
        self.backend = backend
        self.reason = reason
        self.primary: Node
        self.standbys: list[Node] = []
        self.others: list[Node] = []  # add_node()'s nodes that do not stream (PITR, say)
        self.slots: list[tuple[Node, str]] = []  # (upstream, slot) made by the harness
        self._synchronous: dict[str, list[str]] = {}  # upstream name -> its sync standbys
        self._upstreams: dict[str, Node] = {}  # standby name -> the node it streams from
        #: (node or "cluster", verb) of each change, its nodes' too (healing.py reads it)
        self.journal: list[tuple[str, str]] = []
        self._closed = False

    @property
    def standby(self) -> Node:  # the first standby
        return self.standbys[0]

    @property
    def nodes(self) -> list[Node]:
        return [self.primary, *self.standbys, *self.others]

    def dsn(self, target_session_attrs: str = "read-write", dbname: str | None = None) -> str:
        """One multi-host conninfo over the primary and the standbys (``host=a,b
        port=1,2 ... target_session_attrs=read-write``): libpq, psycopg and asyncpg try
        each server in turn and keep the first with those attributes, so "read-write"
        finds the primary after a failover, "standby" / "prefer-standby" a replica."""
        return multi_host(
            [n.dsn for n in [self.primary, *self.standbys]], target_session_attrs, dbname
        )

    def node(self, name: str) -> Node:
        """A node by name (``"primary"``, ``"standby2"``)."""
        for node in self.nodes:
            if node.name == name:
                return node
        raise KeyError(f"no node {name!r} in this cluster; it has {[n.name for n in self.nodes]}")

    def build(self) -> Cluster:
        """Bring the nodes up; a standby counts once its WAL receiver streams. Servers the
        harness did not start are taken as they are: they need only accept connections."""
        self.primary = self._node(self.backend.create_primary("primary"))
        if self.settings.external:
            for i in range(1, self.settings.standby_count + 1):
                standby = self._node(
                    self.backend.create_standby(f"standby{i}", self.primary.handle)
                )
                self.standbys.append(standby)
                standby.handle.wait_ready()
        else:
            self._refuse_more_than_the_primary_serves()
            for _ in range(self.settings.standbys):
                chained = self.settings.cascade and self.standbys
                upstream = self.standbys[-1] if chained else self.primary
                self.add_standby(upstream=upstream, slot=self.settings.uses_slots)
            if self.settings.synchronous:
                direct = [s.name for s in self.standbys if self._upstreams[s.name] is self.primary]
                self._make_synchronous(self.primary, direct, self.settings.synchronous)
        self.primary.handle.wait_ready()
        if not self.settings.external:
            self._harness_conf(self.primary)
        if self.settings.archiving and not self.settings.external:
            self.primary.enable_archiving()
        self._check_version()
        _BUILT.append(self.describe_servers())
        return self

    @property
    def server_version(self) -> str:
        """The primary's ``server_version``, as the server prints it."""
        return self.primary.server_version()

    def describe_servers(self) -> str:
        """``PostgreSQL 13.22 (Debian 13.22-0+deb11u1) on docker (pgstandby/postgres:13)``:
        what ran, for the pytest report and summary."""
        where = self.backend.runs_from
        return f"PostgreSQL {self.server_version} on {self.backend.name}" + (
            f" ({where})" if where else ""
        )

    def servers_heading(self) -> str:
        """describe_servers(), or what runs and why its version is unreadable."""
        try:
            return self.describe_servers()
        except (PgStandbyError, psycopg.Error) as exc:
            return f"{self.backend.describe()} (server_version unreadable: {exc})"

    def _check_version(self) -> None:
        """The ``version`` asked is the one that runs: a mislabelled image or a wrong
        binaries directory is named, not tested against. Reads (and caches) the primary's
        version, which the pytest report names even once the primary is stopped."""
        ran = self.primary.server_version_num() // 10000
        asked = self.settings.version
        if asked and not self.settings.external and ran != int(asked):
            raise VersionMismatchError(
                f"version={asked} was asked, but the primary runs PostgreSQL "
                f"{self.server_version} ({self.backend.describe()}). Fix: rebuild or "
                f"retag the image (`pgstandby image build --pg {asked} --force`), or "
                "point --pgstandby-pg-bin at that version's binaries."
            )

    def _refuse_more_than_the_primary_serves(self) -> None:
        """Before any standby is built: the primary's WAL senders (and slots) must be
        enough for the standbys that stream from it directly. While the last one is cloned
        the others stream, and its ``pg_basebackup`` (``-X stream``) holds two senders: n
        direct standbys need n + 1. The check waits for the primary, so a Docker build no
        longer makes its first standby's container while the primary initialises (~0.4 s).
        A single standby without a slot, the common case, is not checked: two senders is
        any primary's least (PostgreSQL's default is 10), and a primary set lower is named
        by pg_basebackup itself."""
        direct = 1 if self.settings.cascade else self.settings.standbys
        slots = self.settings.uses_slots
        if direct <= 1 and not slots:
            return
        self.primary.handle.wait_ready()
        max_senders, busy, max_slots, taken = self.primary.execute(
            "SELECT current_setting('max_wal_senders')::int,"
            " (SELECT count(*) FROM pg_stat_replication)::int,"
            " current_setting('max_replication_slots')::int,"
            " (SELECT count(*) FROM pg_replication_slots)::int"
        )[0]
        shape = f"standbys={self.settings.standbys}" + (
            ", cascade" if self.settings.cascade else ""
        )
        if direct + 1 > max_senders - busy:
            in_use = f", {busy} in use" if busy else ""
            raise TooManyStandbysError(
                f"{shape}: {direct} standby(s) streaming from the primary need {direct + 1} "
                "WAL senders (the last one's base backup takes a second), but the primary "
                f"allows max_wal_senders={max_senders}{in_use}; no standby was built. Fix: at "
                f"most {max(max_senders - busy - 1, 0)} standbys (or cascade=True), or a "
                "primary with a larger max_wal_senders (postgresql.conf, then a restart)."
            )
        if slots and direct > max_slots - taken:
            in_use = f", {taken} in use" if taken else ""
            raise TooManyStandbysError(
                f"{shape}, slots=True: {direct} standby(s) need a replication slot each on "
                f"the primary, but it allows max_replication_slots={max_slots}{in_use}; no "
                f"standby was built. Fix: at most {max(max_slots - taken, 0)} standbys, "
                "slots=False, or a primary with a larger max_replication_slots "
                "(postgresql.conf, then a restart)."
            )

    def add_standby(
        self,
        name: str | None = None,
        *,
        upstream: Node | None = None,
        slot: bool = False,
        synchronous: bool = False,
    ) -> Node:
        """One more standby, made by ``lab/setup-standby.sh`` against ``upstream`` (the
        primary by default; a standby makes a cascade). Returns once it streams.

        ``slot=True``: a physical slot named after the standby is created on the upstream
        before the base backup and the standby streams through it (``primary_slot_name``,
        on its command line: a standby cloned from this one must not inherit it);
        the harness drops it at teardown. ``synchronous=True``: the upstream lists the
        standby in ``synchronous_standby_names``, under the name its WAL receiver really
        presents (``cluster_name``, which each harness standby runs with).

        >>> third = cluster.add_standby(upstream=cluster.standby)        # doctest: +SKIP
        """
        up = upstream or self.primary
        self._refuse_external("add a standby")
        self.journal.append(("cluster", "add_standby"))
        name = name or self._next_name()
        self._check_new_name(name)
        if slot:
            up.handle.wait_ready()  # a Docker primary may still be initialising
            up.create_slot(name)
            self.slots.append((up, name))
        handle = self.backend.create_standby(name, up.handle, slot=name if slot else None)
        node = self._node(handle)
        self.standbys.append(node)
        self._upstreams[name] = up
        node.poll_query_until("SELECT status FROM pg_stat_wal_receiver", "streaming")
        self._harness_conf(node)
        if slot:  # given on the standby's command line (see the backends)
            up.poll_query_until(
                "SELECT active FROM pg_replication_slots WHERE slot_name = %s", params=[name]
            )
        if synchronous:
            self._make_synchronous(up, [*self._synchronous.get(up.name, []), name], "FIRST 1")
        return node

    def add_node(
        self,
        name: str,
        backup: Backup,
        *,
        streaming: bool = False,
        restoring: bool = False,
        standby: bool = True,
        conf: dict[str, Any] | None = None,
    ) -> Node:
        """A node started from ``backup`` (Cluster.pm's ``init_from_backup``): the backup's
        files in a data directory of its own, then:

        - ``streaming``: it streams from the backup's source (``primary_conninfo`` as the
          cluster's standbys have it, pointed there), and joins ``standbys``;
        - ``restoring``: a ``restore_command`` from the cluster's WAL archive
          (``archiving=True``);
        - ``standby=False``: ``recovery.signal`` instead of ``standby.signal``: targeted
          recovery, which ends at ``conf``'s ``recovery_target_*`` (with
          ``recovery_target_action``: ``pause``, the default, ``promote`` or ``shutdown``);
        - ``conf``: settings appended to its ``postgresql.auto.conf``.

        Returns once it accepts connections (and reached a recovery target, or streams).

        >>> before = cluster.primary.backup("before")                     # doctest: +SKIP
        >>> pitr = cluster.add_node("pitr", before, restoring=True, standby=False,
        ...     conf={"recovery_target_name": "before_drop",
        ...           "recovery_target_action": "promote"})                # doctest: +SKIP
        """
        self._refuse_external(f"add {name}")
        self._check_new_name(name)
        self.journal.append(("cluster", "add_node"))
        source = self.node(backup.source)
        node = self._node(self.backend.create_node(name))
        self.others.append(node)
        node.handle.run(["cp", "-a", f"{backup.path}/.", node.data_dir])
        # a standby's backup carries a primary_conninfo: not followed unless streaming
        lines = {"primary_conninfo": "", **HARNESS_CONF}
        if streaming:
            stream = self._stream_params()
            addr = source.peer_address(node)
            stream.update(host=addr.hosts[0], port=addr.port, application_name=name)
            lines["primary_conninfo"] = make_conninfo("", **stream)
        if restoring:
            lines["restore_command"] = f"cp {node.archive_dir()}/%f %p"
        node.set_conf_lines(**lines, **{k: str(v) for k, v in (conf or {}).items()})
        node.handle.write_file("standby.signal" if standby else "recovery.signal", "")
        offset = node.log_offset()
        try:
            node.start()
            node.reach_recovery_target({} if standby else conf or {})
        except PgStandbyError as exc:
            cause = explain(node.log()[offset:])
            if cause is None:
                raise
            raise SetupFailedError(
                f"{name} could not start from backup {backup.name!r}: {cause}"
            ) from exc
        if streaming:
            node.poll_query_until("SELECT status FROM pg_stat_wal_receiver", "streaming")
            if standby:
                self.others.remove(node)
                self.standbys.append(node)
                self._upstreams[name] = source
        return node

    def _stream_params(self) -> dict[str, str]:
        """How the cluster's standbys log in to their upstream (replication user, and its
        password or passfile), from the first that runs."""
        for standby in self.standbys:
            if standby.is_running():
                return conninfo_params(str(standby.query_value("SHOW primary_conninfo") or ""))
        raise ConfigurationError(
            "no standby of the cluster runs to copy a primary_conninfo from. Fix: start one."
        )

    def shape(self) -> tuple[dict[str, str], list[tuple[str, str]], dict[str, list[str]]]:
        """By name: each standby's upstream, the slots the harness made (upstream, slot),
        each upstream's synchronous standbys. What a snapshot keeps."""
        upstreams = {s.name: self._upstreams[s.name].name for s in self.standbys}
        slots = [(up.name, slot) for up, slot in self.slots]
        return upstreams, slots, {up: list(names) for up, names in self._synchronous.items()}

    def adopt(
        self,
        handles: list[NodeHandle],
        upstreams: dict[str, str],
        slots: list[tuple[str, str]],
        synchronous: dict[str, list[str]],
    ) -> None:
        """Take nodes already running in a known shape (a snapshot's copies): the first
        is the primary."""
        nodes = {h.name: self._node(h) for h in handles}
        self.primary = nodes[handles[0].name]
        self.standbys = [nodes[h.name] for h in handles[1:]]
        self._upstreams = {s: nodes[up] for s, up in upstreams.items()}
        self.slots[:] = [(nodes[up], slot) for up, slot in slots]
        self._synchronous = {up: list(names) for up, names in synchronous.items()}

    def _node(self, handle: NodeHandle) -> Node:
        """A Node of this cluster: slots made for its streaming (follow()) are the
        cluster's to drop at teardown."""
        node = Node(handle, self.settings.timeout)
        node.slots_made = self.slots
        node.journal = self.journal
        return node

    @staticmethod
    def _harness_conf(node: Node) -> None:
        """HARNESS_CONF in postgresql.auto.conf, where set_conf() may change it."""
        node.set_conf(**HARNESS_CONF)

    def _refuse_external(self, what: str) -> None:
        if self.settings.external:
            raise NotOwnedError(
                f"cannot {what} to a cluster of external servers: the harness starts no "
                "server there. Fix: build the pair with the harness (no "
                "--pgstandby-primary-dsn) to add nodes."
            )

    def _check_new_name(self, name: str) -> None:
        if not _NODE_NAME.fullmatch(name) or any(n.name == name for n in self.nodes):
            raise ConfigurationError(
                f"node name {name!r} is taken or not usable as a slot and application "
                "name. Fix: a new name of lowercase letters, digits and underscores."
            )

    def _next_name(self) -> str:
        taken = {n.name for n in self.nodes}
        return next(f"standby{i}" for i in range(1, len(taken) + 2) if f"standby{i}" not in taken)

    def _make_synchronous(self, upstream: Node, names: list[str], method: str) -> None:
        """``synchronous_standby_names`` on the upstream, then wait until the walsenders
        of those standbys report the synchronous state the method gives them."""
        count = int(method.split()[1])
        if count > len(names):
            raise ConfigurationError(
                f"synchronous={method!r} waits for {count} standby(s), but {upstream.name} has "
                f"{len(names)} direct standby(s). Fix: more standbys, or a smaller number."
            )
        self._synchronous[upstream.name] = names
        listed = ", ".join(f'"{n}"' for n in names)
        upstream.set_conf(synchronous_standby_names=f"{method.upper()} ({listed})")
        states = "('quorum')" if method.upper().startswith("ANY") else "('sync', 'potential')"
        upstream.poll_query_until(
            "SELECT count(*) FROM pg_stat_replication "
            f"WHERE application_name = ANY(%s) AND sync_state IN {states}",
            len(names),
            params=[names],
        )

    def remove_standby(self, standby: Node) -> None:
        """Take a standby out of the cluster: stop it (immediate shutdown) and drop the
        slot the harness made for it on its upstream. Its files go with the cluster."""
        if standby not in self.standbys:
            raise KeyError(f"{standby.name} is not a standby of this cluster")
        standby.handle.refuse_unless_owned("remove")
        self.journal.append(("cluster", "remove_standby"))
        standby.stop("immediate")
        for upstream, slot in [s for s in self.slots if s[1] == standby.name]:
            self._drop_slot(upstream, slot)
        self.standbys.remove(standby)

    def _drop_slot(self, upstream: Node, slot: str) -> None:
        upstream.poll_query_until(
            "SELECT NOT active FROM pg_replication_slots WHERE slot_name = %s", params=[slot]
        )
        upstream.drop_slot(slot)
        self.slots.remove((upstream, slot))
        log.info("dropped replication slot %s on %s", slot, upstream.name)

    def drop_slots(self) -> list[str]:
        """Drop the slots the harness made (stopping a standby that still streams through
        one first). Teardown does this; returns the names dropped."""
        dropped = []
        # the last made first: in a cascade, a standby that hosts a slot stops only after
        # the slot it hosts is dropped
        for upstream, slot in reversed(self.slots):
            user = next((s for s in self.standbys if s.name == slot), None)
            if not upstream.is_running():  # killed by the test: its files go with it
                log.info("not dropping slot %s: %s does not run", slot, upstream.name)
                continue
            try:
                if user is not None and user.is_running():
                    user.stop("immediate")
                self._drop_slot(upstream, slot)
                dropped.append(slot)
            except (PgStandbyError, psycopg.Error) as exc:
                log.warning("could not drop slot %s on %s: %s", slot, upstream.name, exc)
        return dropped

    def describe(self) -> str:
        return self.backend.describe() + (f" [{self.reason}]" if self.reason else "")

    def logs(self, max_lines: int = 200) -> dict[str, str]:
        """The tail of each node's server log and setup output, masked."""
        out: dict[str, str] = {}
        if not hasattr(self, "primary"):  # the build failed before the primary existed
            return out
        out["servers"] = self.servers_heading()
        for node in self.nodes:
            for label, read in (("setup", node.setup_output), ("log", node.log)):
                try:
                    lines = read().splitlines()[-max_lines:]
                    out[f"{node.name} {label}"] = mask_secrets("\n".join(lines))
                except OSError as exc:
                    out[f"{node.name} {label}"] = f"(unreadable: {exc})"
        return out

    closed = property(lambda self: self._closed, doc="Whether close() ran.")

    def close(self, keep: bool = False) -> None:
        if self._closed:
            return
        self._closed = True
        if not keep and self.slots:
            self.drop_slots()
        for node in self.nodes if hasattr(self, "primary") else []:
            node.close_connections()  # waits' connections, before the servers stop
        self.backend.close(keep=keep)

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        self.close(keep=self.settings.keeps(failed=exc_type is not None))


def build_cluster(settings: Settings) -> Cluster:
    """Open the backend the settings ask for and bring the nodes up; the caller closes it."""
    backend, reason = open_backend(settings)
    if settings.profile == "auto":  # as the backend decided: hardened where others reach
        settings = settings.with_overrides(profile="hardened" if backend.hardened else "documented")
    cluster = Cluster(settings, backend, reason)
    try:
        cluster.build()
    except BaseException:
        cluster.close(keep=settings.keeps(failed=True))
        raise
    built(backend)  # Docker: the next cluster of these settings may be made ahead
    return cluster


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
