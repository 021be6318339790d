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
import math
from collections.abc import Iterator, Sequence
from typing import Any, Literal

import psycopg
from psycopg.conninfo import make_conninfo

from ._text import mask_secrets
from ._wait import poll_until
from .backends.base import Backend, NodeHandle, StopMode
from .config import Settings

log = logging.getLogger(__name__)

LsnKind = Literal["insert", "write", "flush", "receive", "replay"]
CatchupMode = Literal["receive", "replay"]

_PRIMARY_LSN = {
    "insert": "pg_current_wal_insert_lsn()",
    "write": "pg_current_wal_lsn()",
    "flush": "pg_current_wal_flush_lsn()",
}
_STANDBY_LSN = {"receive": "pg_last_wal_receive_lsn()", "replay": "pg_last_wal_replay_lsn()"}


def _connect_budget(timeout: float) -> int:
    """A libpq connect_timeout (whole seconds, at least 2) that keeps a poll near its bound."""
    return max(2, min(10, math.ceil(timeout)))


class Node:
    """One PostgreSQL server of a cluster, wherever it lives (process or container)."""

    def __init__(self, handle: NodeHandle, timeout: float = 60.0) -> None:
        self.handle = handle
        self.timeout = timeout

    # identity ---------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.handle.name

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
        c = self.handle.credentials
        params: dict[str, Any] = {"host": self.host, "port": self.port, "user": c.user}
        params["dbname"] = c.dbname
        if c.password:
            params["password"] = c.password
        return make_conninfo(**params)

    def __repr__(self) -> str:
        return f"<Node {self.name} ({self.role}) {mask_secrets(self.dsn)}>"

    # SQL --------------------------------------------------------------------------------
    def connect(self, **kwargs: Any) -> psycopg.Connection[Any]:
        """A new autocommit psycopg connection; keyword arguments override conninfo keys.

        ``connect_timeout`` defaults to 10 s so that a frozen server cannot hang a wait."""
        kwargs.setdefault("connect_timeout", 10)
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
        seen: list[Any] = []
        budget = _connect_budget(timeout or self.timeout)

        def check() -> bool:
            value = self.query_value(sql, connect_timeout=budget)
            seen[:] = [value]
            return bool(value == expected)

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
        (or ``target_lsn``). Returns the target. The timeout error names both LSNs."""
        target = target_lsn or self.lsn("write")
        column = _STANDBY_LSN[mode]
        seen: dict[str, Any] = {}
        budget = _connect_budget(timeout or self.timeout)

        def check() -> bool:
            row = standby.execute(
                f"SELECT {column}::text, {column} >= %s::pg_lsn", [target], connect_timeout=budget
            )[0]
            seen["lsn"] = row[0]
            return bool(row[1])

        def standby_log() -> str:
            return f"(standby {standby.name} {mode} LSN {seen.get('lsn')}, target {target})\n" + (
                standby.log()
            )

        poll_until(
            check,
            what=f"{standby.name} to {mode} up to {target} of {self.name}",
            timeout=timeout or self.timeout,
            log=standby_log,
        )
        return str(target)

    def promote(self, timeout: float | None = None) -> None:
        """Promote a standby to primary and wait until it accepts writes."""
        secs = int(timeout or self.timeout)
        self.execute(f"SELECT pg_promote(wait => true, wait_seconds => {secs})")
        self.poll_query_until("SELECT pg_is_in_recovery()", False, timeout)

    # process control and files ---------------------------------------------------------
    def stop(self, mode: StopMode = "fast") -> None:
        self.handle.stop(mode, self.timeout)

    def start(self) -> None:
        self.handle.start()

    def restart(self, mode: StopMode = "fast") -> None:
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
        t = self.settings.timeout
        self.primary = Node(self.backend.create_primary("primary"), t)
        for i in range(1, self.settings.standbys + 1):
            standby = Node(self.backend.create_standby(f"standby{i}", self.primary.handle), t)
            self.standbys.append(standby)
            standby.poll_query_until(
                "SELECT status FROM pg_stat_wal_receiver", "streaming", timeout=t
            )
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

    def __exit__(self, *exc: object) -> None:
        self.close(keep=self.settings.keep == "always")


def build_cluster(settings: Settings) -> Cluster:
    """Open the backend the settings ask for and bring the nodes up; the caller closes it."""
    from .backends.select import open_backend

    backend, reason = open_backend(settings)
    cluster = Cluster(settings, backend, reason)
    try:
        cluster.build()
    except BaseException:
        cluster.close(keep=settings.keep in ("always", "on-failure"))
        raise
    return cluster


@contextlib.contextmanager
def start_cluster(settings: Settings | None = None, **overrides: Any) -> Iterator[Cluster]:
    """Bring up a primary and ``standbys`` standbys per the documented procedure.

    Usable without pytest: ``with start_cluster(backend="local", standbys=1) as c: ...``
    """
    cluster = build_cluster((settings or Settings()).with_overrides(**overrides))
    with cluster:
        yield cluster
