"""Assertion helpers that grade a primary/standby pair, with or without pytest.

Every helper takes a :class:`~pytest_pgstandby.cluster.Node`, a plain libpq DSN, or a
:class:`Server` describing a server the harness did not start, so the same checks grade a
harness pair, the classroom lab, or a student's hand-built pair:

>>> from pytest_pgstandby.assertions import Server, assert_standby_signal
>>> assert_standby_signal(Server("host=127.0.0.1 port=5433 user=postgres",
...                              data_dir="/srv/standby"))            # doctest: +SKIP

A failed check raises :class:`ReplicationAssertionError` (an ``AssertionError``) whose
multi-line message lists each problem, what was observed, and how to fix it; passwords in
any conninfo are masked. Every connection is bounded by ``connect_timeout`` and every wait
by a timeout, so a frozen server fails a check instead of hanging it.
See docs/assertions.md for the SQL each helper runs and real failure output.
"""

from __future__ import annotations

import logging
import math
import os
import re
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Literal, TypeAlias

import psycopg
import psycopg.errors
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from ._text import MASK, mask_secrets
from ._wait import poll_until
from .cluster import Node
from .errors import PgStandbyError, WaitTimeoutError

__all__ = [
    "CONNECT_TIMEOUT",
    "ReplicationAssertionError",
    "ReplicationLag",
    "Server",
    "ServerLike",
    "assert_primary_conninfo",
    "assert_read_only",
    "assert_replication_lag",
    "assert_standby_signal",
    "assert_streaming",
    "poll_query_until",
    "wait_for_catchup",
]

log = logging.getLogger(__name__)

#: Seconds any single connection attempt may take (libpq counts whole seconds, at least 2).
CONNECT_TIMEOUT = 5.0
#: A data directory inside a container, when neither ``data_dir`` nor the server says.
CONTAINER_PGDATA = "/var/lib/postgresql/data"
READ_ONLY_SQLSTATE = "25006"  # read_only_sql_transaction
LAG_PROBE_TABLE = "pgstandby_lag_probe"
_LOOPBACK = ("127.0.0.1", "localhost", "::1")
_MIN_SECRET_LEN = 4  # shorter passwords are masked in conninfo form only, not as bare words


def _distinctive(secret: str) -> bool:
    """Whether a password may also be masked where it stands as a bare word. A plain word
    such as the lab's ``postgres`` is also a user, a database and part of host names;
    masking it everywhere would garble the message, so it is masked as ``password=``
    values only (mask_secrets)."""
    return len(secret) >= _MIN_SECRET_LEN and not secret.isalpha()


@dataclass(frozen=True, repr=False)
class Server:
    """A server the harness did not start: a DSN, and where its data directory can be read.

    ``data_dir`` alone is a path on this machine. ``container`` names a Docker container
    whose files are read with ``docker exec cat``; ``data_dir`` is then the path inside the
    container (default: the server's ``data_directory``, else ``$PGDATA``, else
    ``/var/lib/postgresql/data``). With neither, checks that need files say so.
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


ServerLike: TypeAlias = Node | Server | str


class ReplicationAssertionError(AssertionError):
    """A replication check failed. ``problems`` holds one line per failed condition; the
    message adds what was observed and a fix. Passwords are masked."""

    def __init__(self, message: str, problems: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.problems = list(problems)


@dataclass(frozen=True)
class ReplicationLag:
    """What :func:`assert_replication_lag` measured (it returns this when the check passes)."""

    lag_bytes: int | None
    lag_seconds: float | None  # marker written on the primary until the standby replayed it
    primary_lsn: str | None
    standby_replay_lsn: str | None
    marker_lsn: str | None
    replay_lag: timedelta | None  # pg_stat_replication.replay_lag, as the primary reports it


# --------------------------------------------------------------------------------------
# reports


class _Report:
    """Collects problems and observations of one check; raises one masked error."""

    def __init__(self, check: str, subject: str) -> None:
        self.check = check
        self.subject = subject
        self.problems: list[str] = []
        self.observed: list[str] = []
        self.fixes: list[str] = []
        self.secrets: set[str] = set()

    def problem(self, text: str) -> None:
        self.problems.append(text)

    def see(self, text: str) -> None:
        self.observed.append(text)

    def fix(self, text: str) -> None:
        if text not in self.fixes:
            self.fixes.append(text)

    def scrub(self, text: str) -> str:
        text = mask_secrets(text)
        for secret in sorted(self.secrets, key=len, reverse=True):
            if _distinctive(secret):
                text = text.replace(secret, MASK)
        return text

    def render(self) -> str:
        n = len(self.problems)
        lines = [f"{self.check} failed for {self.subject}: {n} problem{'s' * (n != 1)}"]
        lines += [f"  - {p}" for p in self.problems]
        if self.observed:
            lines.append("  observed:")
            lines += [f"    {o}" for o in self.observed]
        lines += [f"  fix: {f}" for f in self.fixes]
        return self.scrub("\n".join(lines))

    def raise_if_problems(self) -> None:
        __tracebackhide__ = True
        if self.problems:
            raise ReplicationAssertionError(self.render(), [self.scrub(p) for p in self.problems])
        log.debug("%s passed for %s", self.check, self.scrub(self.subject))


def _error_text(exc: BaseException) -> str:
    """One line for a database or OS error: SQLSTATE (if any) and the first message line."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    state = getattr(exc, "sqlstate", None)
    return f"{text} (SQLSTATE {state})" if state else text


# --------------------------------------------------------------------------------------
# one adapter for Node | Server | DSN


class _FilesUnavailable(Exception):
    """The data directory of a server cannot be read from here."""


class _Target:
    """Node, Server or DSN behind one small interface: connect, read files, addresses."""

    def __init__(self, server: ServerLike, role: str) -> None:
        self.role = role
        self.node: Node | None = None
        self.server: Server | None = None
        if isinstance(server, Node):
            self.node = server
            self.dsn = server.dsn
        elif isinstance(server, Server):
            self.server = server
            self.dsn = server.dsn
        elif isinstance(server, str):
            self.server = Server(server)
            self.dsn = server
        else:
            raise TypeError(
                f"{role} must be a Node, a Server or a libpq DSN string, "
                f"not {type(server).__name__}"
            )
        try:
            self.params = {k: str(v) for k, v in conninfo_to_dict(self.dsn).items()}
        except psycopg.Error as exc:
            raise ValueError(
                f"{role}: {mask_secrets(self.dsn)!r} is not a libpq conninfo string or URI "
                f"({mask_secrets(str(exc))})"
            ) from None
        self.secrets = {self.params["password"]} if self.params.get("password") else set()
        self._docker: Any = None
        self._container: Any = None
        self._container_dir: str | None = None

    @property
    def label(self) -> str:
        masked = _show_conninfo(self.params)
        return f"{self.node.name} ({masked})" if self.node is not None else masked

    def close(self) -> None:
        if self._docker is not None:
            self._docker.close()

    # SQL ------------------------------------------------------------------------------
    def connect(self, timeout: float = CONNECT_TIMEOUT) -> psycopg.Connection[Any]:
        budget = max(2, math.ceil(timeout))
        if self.node is not None:
            return self.node.connect(connect_timeout=budget)
        return psycopg.connect(make_conninfo(self.dsn, connect_timeout=budget), autocommit=True)

    # files ----------------------------------------------------------------------------
    def files_where(self) -> str:
        if self.node is not None:
            return f"{self.node.data_dir} (node {self.node.name})"
        assert self.server is not None
        if self.server.container:
            return f"{self.server.container}:{self._container_dir or self.server.data_dir or '?'}"
        return self.server.data_dir or "(no data directory given)"

    def file_label(self, relpath: str) -> str:
        """Where a file of the data directory lives, for messages."""
        if self.node is not None:
            return os.path.join(self.node.data_dir, relpath)
        assert self.server is not None
        if self.server.container:
            return f"{self.server.container}:{self._in_container(relpath)}"
        return os.path.join(self.server.data_dir or "", relpath)

    def _unavailable(self) -> str | None:
        if self.node is not None or (
            self.server and (self.server.data_dir or self.server.container)
        ):
            return None
        return (
            f"cannot read files of {self.role} {self.label}: it was given as a bare DSN. "
            f"Pass Server(dsn, data_dir='/path/to/data') for a server on this machine, or "
            f"Server(dsn, container='<container name>') for one in a Docker container"
        )

    def read_file(self, relpath: str) -> str | None:
        """The file's text, or None when it does not exist; _FilesUnavailable when the data
        directory cannot be read at all."""
        reason = self._unavailable()
        if reason:
            raise _FilesUnavailable(reason)
        try:
            if self.node is not None:
                return self.node.read_file(relpath)
            assert self.server is not None
            if self.server.container:
                return self._container_read(relpath)
            assert self.server.data_dir is not None
            with open(
                os.path.join(self.server.data_dir, relpath), encoding="utf-8", errors="replace"
            ) as fh:
                return fh.read()
        except FileNotFoundError:
            return None
        except (OSError, PgStandbyError) as exc:
            raise _FilesUnavailable(
                f"cannot read {relpath} in {self.files_where()}: {_error_text(exc)}"
            ) from None

    def file_exists(self, relpath: str) -> bool:
        reason = self._unavailable()
        if reason:
            raise _FilesUnavailable(reason)
        if self.node is not None:
            try:
                return self.node.file_exists(relpath)
            except OSError as exc:
                raise _FilesUnavailable(f"cannot look into {self.files_where()}: {exc}") from None
        assert self.server is not None
        if self.server.container:
            code, _ = self._container_exec("test", "-e", self._in_container(relpath))
            return code == 0
        assert self.server.data_dir is not None
        if not os.access(self.server.data_dir, os.R_OK | os.X_OK):
            raise _FilesUnavailable(f"cannot look into {self.server.data_dir}: permission denied")
        return os.path.exists(os.path.join(self.server.data_dir, relpath))

    # containers -----------------------------------------------------------------------
    def container(self) -> Any:
        """The docker-py container this server runs in, or None."""
        if self.node is not None:
            return getattr(self.node.handle, "wrapped", None)
        if self.server is None or not self.server.container:
            return None
        if self._container is None:
            from .backends.docker import connect_docker

            try:
                if self._docker is None:
                    self._docker = connect_docker()
                self._container = self._docker.containers.get(self.server.container)
            except Exception as exc:
                raise _FilesUnavailable(
                    f"no container {self.server.container!r}: {_error_text(exc)}"
                ) from None
        return self._container

    def container_or_none(self) -> Any:
        try:
            return self.container()
        except _FilesUnavailable as exc:
            log.warning("%s: %s; using its DSN as its address", self.role, exc)
            return None

    def _in_container(self, relpath: str) -> str:
        if relpath.startswith("/") or ".." in relpath.split("/"):
            raise ValueError(f"{relpath!r} is outside the data directory")
        if self._container_dir is None:
            assert self.server is not None
            self._container_dir = self.server.data_dir or self._guess_container_dir()
        return f"{self._container_dir.rstrip('/')}/{relpath}"

    def _guess_container_dir(self) -> str:
        try:
            with self.connect() as conn:
                row = conn.execute("SHOW data_directory").fetchone()
                if row and row[0]:
                    return str(row[0])
        except psycopg.Error:
            pass  # needs superuser or pg_read_all_settings; fall back to the image's contract
        env = self.container().attrs.get("Config", {}).get("Env") or []
        for item in env:
            if item.startswith("PGDATA="):
                return str(item.split("=", 1)[1])
        return CONTAINER_PGDATA

    def _container_exec(self, *argv: str) -> tuple[int, str]:
        try:
            code, out = self.container().exec_run(list(argv))
        except _FilesUnavailable:
            raise
        except Exception as exc:
            raise _FilesUnavailable(
                f"cannot run {argv[0]} in container {self.files_where()}: {_error_text(exc)}"
            ) from None
        return int(code), bytes(out).decode(errors="replace")

    def _container_read(self, relpath: str) -> str | None:
        path = self._in_container(relpath)
        code, out = self._container_exec("cat", path)
        if code == 0:
            return out
        if "No such file" in out:
            return None
        raise _FilesUnavailable(f"cannot read {path} in {self.files_where()}: {out.strip()}")

    # how peers reach this server ------------------------------------------------------
    def address_for(self, peer: _Target) -> tuple[list[str], str, str]:
        """Host names and port under which ``peer`` (a standby) reaches this server, and a
        note of where that came from. A server in a container is reached inside its Docker
        network (aliases, container name, IP, container port); any other by its DSN."""
        mine = self.container_or_none()
        if mine is not None:
            mine.reload()
            networks: dict[str, Any] = mine.attrs["NetworkSettings"]["Networks"] or {}
            theirs = peer.container_or_none()
            names = set(networks)
            if theirs is not None:
                theirs.reload()
                names &= set(theirs.attrs["NetworkSettings"]["Networks"] or {})
            hosts: list[str] = []
            for name in sorted(names):
                net = networks[name]
                hosts += list(net.get("Aliases") or []) + list(net.get("DNSNames") or [])
                if net.get("IPAddress"):
                    hosts.append(str(net["IPAddress"]))
            hosts.append(str(mine.name).lstrip("/"))
            port = self._container_port(mine)
            where = ", ".join(sorted(names)) or "no shared network"
            return list(dict.fromkeys(hosts)), port, f"container {mine.name} in {where}"
        host = self.params.get("host") or self.params.get("hostaddr") or ""
        hosts = list(_LOOPBACK) if host in _LOOPBACK else [host]
        return hosts, self.params.get("port") or "5432", f"the {self.role}'s DSN"

    def _container_port(self, container: Any) -> str:
        published = self.params.get("port") or "5432"
        ports: dict[str, Any] = container.attrs["NetworkSettings"].get("Ports") or {}
        for spec, bindings in ports.items():
            if any(str(b.get("HostPort")) == published for b in bindings or []):
                return str(spec.split("/")[0])
        return "5432"


@contextmanager
def _targets(*pairs: tuple[ServerLike, str]) -> Iterator[list[_Target]]:
    with ExitStack() as stack:
        found = []
        for server, role in pairs:
            target = _Target(server, role)
            stack.callback(target.close)
            found.append(target)
        yield found


def _connect(target: _Target, report: _Report, timeout: float = CONNECT_TIMEOUT) -> Any:
    """A connection, or None after recording why there is none."""
    try:
        return target.connect(timeout)
    except psycopg.Error as exc:
        report.problem(f"cannot connect to the {target.role}: {_error_text(exc)}")
        return None


def _rows(conn: Any, sql: str, params: Sequence[Any] | None = None) -> list[dict[str, Any]]:
    cur = conn.execute(sql, params)
    if cur.description is None:
        return []
    names = [c.name for c in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def _value(conn: Any, sql: str, params: Sequence[Any] | None = None) -> Any:
    row = conn.execute(sql, params).fetchone()
    return row[0] if row else None


# --------------------------------------------------------------------------------------
# conninfo


def _show_conninfo(params: dict[str, str]) -> str:
    """A conninfo string for messages: the password replaced by the mask."""
    shown = {k: (MASK if k == "password" else v) for k, v in params.items() if v is not None}
    return make_conninfo("", **shown)


def _parse_conninfo(value: str) -> dict[str, str]:
    return {k: str(v) for k, v in conninfo_to_dict(value).items() if v is not None}


_CONF_ASSIGNMENT = re.compile(
    r"^\s*primary_conninfo\s*(?:=\s*)?(?P<value>'(?:[^'\\]|''|\\.)*'|[^\s#']+)", re.IGNORECASE
)
_CONF_ESCAPES = {"b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}


def _conf_value(raw: str) -> str:
    if not raw.startswith("'"):
        return raw
    inner = raw[1:-1].replace("''", "'")
    return re.sub(r"\\(.)", lambda m: _CONF_ESCAPES.get(m.group(1), m.group(1)), inner)


@dataclass
class _Assignment:
    """One ``primary_conninfo = ...`` line of a configuration file."""

    file: str
    line: int
    value: str
    origin: str  # pg_file_settings or the file itself
    applied: bool | None = None
    error: str | None = None
    wins: bool = False


@dataclass
class _Conninfo:
    """Everything known about a standby's primary_conninfo."""

    effective: str | None = None
    source: str | None = None  # pg_settings.source
    sourcefile: str | None = None
    sourceline: int | None = None
    unreadable: str | None = None
    assignments: list[_Assignment] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


_PG_SETTINGS_SQL = (
    "SELECT setting, source, sourcefile, sourceline FROM pg_settings "
    "WHERE name = 'primary_conninfo'"
)
_PG_FILE_SETTINGS_SQL = (
    "SELECT sourcefile, sourceline, setting, applied, error FROM pg_file_settings "
    "WHERE name = 'primary_conninfo' ORDER BY seqno"
)
_CONF_FILES = ("postgresql.conf", "postgresql.auto.conf")  # read in this order; last wins


def _read_conninfo(target: _Target, conn: Any) -> _Conninfo:
    info = _Conninfo()
    if conn is not None:
        try:
            row = conn.execute(_PG_SETTINGS_SQL).fetchone()
            if row is None:
                raise psycopg.errors.InsufficientPrivilege("primary_conninfo not in pg_settings")
            info.effective, info.source, info.sourcefile, info.sourceline = row
        except psycopg.Error:
            try:
                info.effective = _value(conn, "SHOW primary_conninfo")
                info.source = "SHOW"
            except psycopg.Error as exc:
                info.unreadable = (
                    f"{_error_text(exc)}: connect as a superuser or a member of "
                    "pg_read_all_settings to read the effective value"
                )
        try:
            for r in _rows(conn, _PG_FILE_SETTINGS_SQL):
                info.assignments.append(
                    _Assignment(
                        r["sourcefile"],
                        r["sourceline"],
                        r["setting"] or "",
                        "pg_file_settings",
                        r["applied"],
                        r["error"],
                    )
                )
        except psycopg.Error as exc:
            info.notes.append(f"pg_file_settings not readable ({_error_text(exc)})")
    listed = {(os.path.basename(a.file), a.line) for a in info.assignments}
    for name in _CONF_FILES:
        try:
            text = target.read_file(name)
        except _FilesUnavailable as exc:
            info.notes.append(str(exc))
            break
        if text is None:
            info.notes.append(f"{name}: not in the data directory {target.files_where()}")
            continue
        for number, line in enumerate(text.splitlines(), start=1):
            match = _CONF_ASSIGNMENT.match(line)
            if match and (name, number) not in listed:
                value = _conf_value(match.group("value"))
                info.assignments.append(_Assignment(target.file_label(name), number, value, "file"))
    _mark_winner(info)
    return info


def _mark_winner(info: _Conninfo) -> None:
    def same(a: _Assignment, path: str) -> bool:
        return a.file == path or os.path.basename(a.file) == os.path.basename(path)

    if info.sourcefile and info.sourceline is not None:
        for a in info.assignments:
            if same(a, info.sourcefile) and a.line == info.sourceline:
                a.wins = True
                return
    for a in info.assignments:
        if a.applied:
            a.wins = True
            return
    order = {name: i for i, name in enumerate(_CONF_FILES)}
    ranked = [a for a in info.assignments if os.path.basename(a.file) in order]
    if ranked and info.source in (None, "configuration file", "SHOW"):
        best = max(ranked, key=lambda a: (order[os.path.basename(a.file)], a.line))
        best.wins = True
        info.notes.append(
            "winner inferred from the files (postgresql.auto.conf is read after "
            "postgresql.conf; within a file the last line wins)"
        )


def _describe_sources(info: _Conninfo, report: _Report) -> None:
    if info.effective is not None:
        where = (
            f"{info.sourcefile}:{info.sourceline}"
            if info.sourcefile
            else (info.source or "unknown source")
        )
        report.see(f"effective primary_conninfo ({where}): {_shown(info.effective)}")
    elif info.unreadable:
        report.see(f"effective primary_conninfo unreadable: {info.unreadable}")
    if info.assignments:
        n = len(info.assignments)
        report.see(
            f"primary_conninfo is set in {n} place{'s' * (n != 1)} (the last one read wins):"
        )
        for a in info.assignments:
            mark = "  <- wins" if a.wins else ""
            error = f"  (error: {a.error})" if a.error else ""
            report.see(f"  {a.file}:{a.line}  {_shown(a.value)}{mark}{error}")
    else:
        report.see("primary_conninfo is set in no configuration file that could be read")
    winner = next((a for a in info.assignments if a.wins), None)
    if (
        winner is not None
        and info.effective is not None
        and not _same_conninfo(winner.value, info.effective)
    ):
        report.see(
            f"note: {winner.file}:{winner.line} differs from the effective value: the file "
            "changed after the last reload (SELECT pg_reload_conf() applies it)"
        )
    for note in info.notes:
        report.see(f"note: {note}")


def _shown(conninfo: str) -> str:
    if not conninfo.strip():
        return "'' (empty)"
    try:
        return _show_conninfo(_parse_conninfo(conninfo))
    except psycopg.Error:
        return "(not a valid conninfo)"


def _same_conninfo(a: str, b: str) -> bool:
    try:
        return _parse_conninfo(a) == _parse_conninfo(b)
    except psycopg.Error:
        return a == b


def _winner_label(info: _Conninfo) -> str:
    for a in info.assignments:
        if a.wins:
            return f"{a.file}:{a.line}"
    if info.sourcefile:
        return f"{info.sourcefile}:{info.sourceline}"
    return info.source or "an unknown source"


# --------------------------------------------------------------------------------------
# assert_standby_signal


def assert_standby_signal(standby: ServerLike) -> None:
    """``standby.signal`` exists in the data directory **and** the server behaves as a
    standby (``pg_is_in_recovery()``). The message says which of the two failed, or both.

    >>> assert_standby_signal(cluster.standby)                       # doctest: +SKIP
    """
    __tracebackhide__ = True  # pytest shows the caller's line, not ours
    with _targets((standby, "standby")) as (s,):
        report = _Report("assert_standby_signal", s.label)
        report.secrets |= s.secrets
        try:
            present: bool | None = s.file_exists("standby.signal")
            if present:
                report.see(f"standby.signal is present in {s.files_where()}")
        except _FilesUnavailable as exc:
            present = None
            report.problem(f"standby.signal could not be checked: {exc}")
        if present is False:
            report.problem(f"standby.signal is missing from the data directory {s.files_where()}")
            try:
                if s.file_exists("recovery.signal"):
                    report.see("recovery.signal is present (archive recovery, not a standby)")
            except _FilesUnavailable:
                pass
        conn = _connect(s, report)
        in_recovery = None
        if conn is not None:
            try:
                with conn:
                    in_recovery = bool(_value(conn, "SELECT pg_is_in_recovery()"))
            except psycopg.Error as exc:
                report.problem(f"SELECT pg_is_in_recovery() failed: {_error_text(exc)}")
        if in_recovery is not None:
            report.see(f"SELECT pg_is_in_recovery() -> {in_recovery}")
            if not in_recovery:
                report.problem(
                    "pg_is_in_recovery() is false: the server runs as a primary, not a standby"
                )
        if present is False and in_recovery is False:
            report.fix(
                "this server runs as a primary: it was started without standby.signal or was "
                "promoted (pg_promote deletes the file), and has left the primary's timeline. "
                "Rebuild it from the primary (pg_basebackup -R, then touch standby.signal: the "
                "seed's sections 2-5) and start it again"
            )
        elif present and in_recovery is False:
            report.fix(
                "standby.signal is read only at start-up: it was created after this server "
                "started as a primary (or the server was promoted). Rebuild the standby"
            )
        elif present is False and in_recovery:
            report.fix(
                "touch standby.signal in the data directory; without it the next restart "
                "ends recovery and turns this server into a primary"
            )
        report.raise_if_problems()


# --------------------------------------------------------------------------------------
# assert_primary_conninfo


def assert_primary_conninfo(
    standby: ServerLike, primary: ServerLike | None = None, **expect: str | int
) -> dict[str, str]:
    """The standby's **effective** ``primary_conninfo`` points at the primary.

    Checks host and port against ``primary`` (as the standby reaches it: for a server in a
    Docker container, its network aliases and container port, e.g.
    ``postgres-primary-lab:5432``; otherwise the host and port of its DSN) and that the
    conninfo's user is a ``REPLICATION LOGIN`` role on the primary. Keywords check any
    conninfo key exactly (``host``, ``port``, ``user``, ``application_name``, ...) and
    override what ``primary`` implies. The message lists every file line that sets
    ``primary_conninfo`` and which one wins. Returns the effective conninfo as a dict,
    the password masked.

    >>> assert_primary_conninfo(standby, primary)                    # doctest: +SKIP
    >>> assert_primary_conninfo(dsn, host="postgres-primary-lab", port=5432, user="replicator")
    ...                                                              # doctest: +SKIP
    """
    __tracebackhide__ = True  # pytest shows the caller's line, not ours
    pairs: list[tuple[ServerLike, str]] = [(standby, "standby")]
    if primary is not None:
        pairs.append((primary, "primary"))
    with _targets(*pairs) as found:
        s = found[0]
        p = found[1] if len(found) > 1 else None
        report = _Report("assert_primary_conninfo", s.label)
        report.secrets |= s.secrets | (p.secrets if p else set())
        conn = _connect(s, report)
        try:
            info = _read_conninfo(s, conn)
        finally:
            if conn is not None:
                conn.close()
        for a in info.assignments:
            report.secrets |= _passwords(a.value)
        if info.effective:
            report.secrets |= _passwords(info.effective)

        value = info.effective
        if value is None:
            winner = next((a for a in info.assignments if a.wins), None)
            if winner is not None:
                value = winner.value
                report.see(f"effective value unknown; checking the winning line {winner.file}")
            elif conn is not None:
                report.problem(
                    "primary_conninfo could not be read: neither its effective value nor any "
                    "configuration file that sets it was readable (see below)"
                )
                report.fix(
                    "connect as a superuser or a member of pg_read_all_settings, or pass "
                    "Server(dsn, data_dir=...) / Server(dsn, container=...) to read the files"
                )
        params: dict[str, str] = {}
        if value is not None:
            if not value.strip():
                report.problem(
                    "primary_conninfo is empty: the standby has no primary to stream from"
                )
            else:
                try:
                    params = _parse_conninfo(value)
                except psycopg.Error as exc:
                    report.problem(f"primary_conninfo is not a valid conninfo: {_error_text(exc)}")

        winner_at = _winner_label(info)
        if params:
            checks: dict[str, tuple[list[str], str]] = {}
            if p is not None:
                hosts, port, how = p.address_for(s)
                checks["host"] = (hosts, f"the primary's host, from {how}")
                checks["port"] = ([port], f"the primary's port, from {how}")
            for key, wanted in expect.items():
                checks[key] = ([str(wanted)], f"asked for {key}={wanted}")
            for key, (allowed, why) in checks.items():
                actual = params.get(key)
                if key == "host" and actual is None:
                    actual = params.get("hostaddr")
                if key == "port" and actual is None:
                    actual = "5432"
                if actual not in allowed:
                    shown = "not set" if actual is None else repr(actual)
                    wants = " or ".join(repr(a) for a in allowed[:4])
                    report.problem(
                        f"{key} is {shown}, expected {wants} ({why}); set in {winner_at}"
                    )
            if p is not None and "user" not in expect:
                _check_replication_role(p, params.get("user"), report)
        _describe_sources(info, report)
        if (
            p is not None
            and _mismatch(report, "host")
            and p.container_or_none() is None
            and p.params.get("host") in _LOOPBACK
            and params.get("host") not in _LOOPBACK
        ):
            report.fix(
                "the primary was compared by its DSN, as this process reaches it; a standby in "
                "a Docker network reaches it by another name. Pass the primary as a Node or "
                "Server(dsn, container=...), or host=/port= as the standby sees it"
            )
        if report.problems and params and not report.fixes:
            report.fix(
                "change primary_conninfo where it wins (ALTER SYSTEM SET primary_conninfo = "
                "'...' writes postgresql.auto.conf, which is read last), then "
                "SELECT pg_reload_conf() (PostgreSQL 13+) or restart the standby"
            )
        report.raise_if_problems()
        return {k: (MASK if k == "password" else v) for k, v in params.items()}


def _mismatch(report: _Report, key: str) -> bool:
    return any(p.startswith(f"{key} is ") for p in report.problems)


def _passwords(conninfo: str) -> set[str]:
    try:
        password = _parse_conninfo(conninfo).get("password")
    except psycopg.Error:
        match = re.search(r"password\s*=\s*'?([^'\s]+)", conninfo)
        password = match.group(1) if match else None
    return {password} if password else set()


def _check_replication_role(primary: _Target, user: str | None, report: _Report) -> None:
    if not user:
        report.problem("primary_conninfo names no user (libpq would use the OS account name)")
        return
    try:
        with primary.connect() as conn:
            row = conn.execute(
                "SELECT rolcanlogin, rolreplication FROM pg_roles WHERE rolname = %s", [user]
            ).fetchone()
    except psycopg.Error as exc:
        report.problem(f"cannot check role {user!r} on the primary: {_error_text(exc)}")
        return
    if row is None:
        report.problem(f"user {user!r} does not exist on the primary")
    elif not (row[0] and row[1]):
        report.problem(
            f"role {user!r} on the primary lacks {'LOGIN' if not row[0] else 'REPLICATION'}"
        )


# --------------------------------------------------------------------------------------
# assert_read_only

_USER_TABLE_SQL = """
SELECT format('%I.%I', n.nspname, c.relname)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p') AND c.relpersistence = 'p'
  AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%'
ORDER BY c.oid LIMIT 1
"""


def assert_read_only(standby: ServerLike) -> None:
    """The standby refuses writes: it is in recovery, ``transaction_read_only`` is on, and a
    real ``CREATE TABLE`` (and an ``INSERT`` into an existing table, if there is one) fail
    with SQLSTATE 25006. Each write runs in a transaction that is always rolled back, so a
    writable server (a promoted standby) keeps nothing; afterwards the probe table must
    not exist.

    >>> assert_read_only(cluster.standby)                            # doctest: +SKIP
    """
    __tracebackhide__ = True  # pytest shows the caller's line, not ours
    with _targets((standby, "standby")) as (s,):
        report = _Report("assert_read_only", s.label)
        report.secrets |= s.secrets
        conn = _connect(s, report)
        if conn is None:
            report.raise_if_problems()
        try:
            with conn:
                _read_only_probes(conn, report)
        except psycopg.Error as exc:
            report.problem(f"query failed: {_error_text(exc)}")
        if report.problems:
            report.fix(
                "a standby is read-only because it is in recovery; a writable one was promoted "
                "or started without standby.signal. Rebuild it from the primary"
            )
        report.raise_if_problems()


def _read_only_probes(conn: Any, report: _Report) -> None:
    """pg_is_in_recovery, transaction_read_only, and the write probes (rolled back)."""
    in_recovery = bool(_value(conn, "SELECT pg_is_in_recovery()"))
    read_only = _value(conn, "SHOW transaction_read_only")
    report.see(f"pg_is_in_recovery() -> {in_recovery}; transaction_read_only = {read_only}")
    if not in_recovery:
        report.problem("pg_is_in_recovery() is false: the server is a primary")
    if read_only != "on":
        report.problem(f"SHOW transaction_read_only is {read_only!r}, expected 'on'")
    probe = f"pgstandby_ro_probe_{uuid.uuid4().hex[:12]}"
    _probe_write(conn, f"CREATE TABLE {probe} (id int)", report)
    table = _value(conn, _USER_TABLE_SQL)
    if table:
        # Zero rows, zero columns: refused at executor start on a read-only server, changes
        # nothing on a writable one, and no column (generated, NOT NULL) gets in the way.
        _probe_write(conn, f"INSERT INTO {table} SELECT WHERE false", report)
    else:
        report.see("no user table to INSERT into; only CREATE TABLE was tried")
    if _value(conn, "SELECT to_regclass(%s) IS NOT NULL", [probe]):
        conn.execute(f"DROP TABLE IF EXISTS {probe}")
        report.problem(f"probe table {probe} existed after the check (dropped it)")
    else:
        report.see(f"afterwards: table {probe} does not exist (nothing changed)")


def _probe_write(conn: Any, sql: str, report: _Report) -> None:
    try:
        with conn.transaction(force_rollback=True):
            conn.execute(sql)
    except psycopg.Error as exc:
        state = getattr(exc, "sqlstate", None)
        if state == READ_ONLY_SQLSTATE:
            report.see(f"{sql}: refused, SQLSTATE {state} ({_error_text(exc).split(' (')[0]})")
        else:
            report.problem(
                f"{sql}: refused with {_error_text(exc)}, expected SQLSTATE "
                f"{READ_ONLY_SQLSTATE} (read_only_sql_transaction)"
            )
        return
    report.problem(f"the write succeeded: `{sql}` ran without error (rolled back)")


# --------------------------------------------------------------------------------------
# walsenders and receivers


def _walsenders(conn: Any) -> list[dict[str, Any]]:
    return [
        r for r in _rows(conn, "SELECT * FROM pg_stat_replication") if r.get("state") != "backup"
    ]


def _receiver_app_name(receiver: dict[str, Any] | None, conninfo: str | None, cluster: str) -> str:
    """The application_name a standby's walreceiver presents to the primary."""
    for text in (receiver or {}).get("conninfo"), conninfo:
        if text:
            try:
                params = _parse_conninfo(text)
            except psycopg.Error:
                continue
            if params.get("application_name"):
                return params["application_name"]
    return cluster or "walreceiver"


def _pick_walsenders(
    senders: list[dict[str, Any]], app_name: str, flushed: str | None, conn: Any
) -> list[dict[str, Any]]:
    """The rule: walsenders whose application_name is the standby's; when several share it,
    those whose reported flush position is not ahead of the standby's own (a reply can
    never be ahead of what the standby flushed)."""
    named = [r for r in senders if r.get("application_name") == app_name]
    if len(named) <= 1 or flushed is None:
        return named
    kept = [
        r
        for r in named
        if r.get("flush_lsn") is None
        or _value(conn, "SELECT %s::pg_lsn <= %s::pg_lsn", [str(r["flush_lsn"]), flushed])
    ]
    return kept or named


def _show_sender(r: dict[str, Any]) -> str:
    return (
        f"walsender pid {r.get('pid')} application_name={r.get('application_name')!r} "
        f"client_addr={r.get('client_addr')} state={r.get('state')} sent={r.get('sent_lsn')} "
        f"flush={r.get('flush_lsn')} replay={r.get('replay_lsn')} replay_lag={r.get('replay_lag')}"
    )


# --------------------------------------------------------------------------------------
# assert_streaming


def assert_streaming(primary: ServerLike, standby: ServerLike, timeout: float = 5.0) -> None:
    """The standby streams from this primary, waiting up to ``timeout`` s for it to settle.

    Standby side: ``pg_stat_wal_receiver`` has status ``streaming`` and its ``sender_host``
    / ``sender_port`` are the primary as the standby reaches it (see
    :func:`assert_primary_conninfo`), and both servers share one system identifier.
    Primary side: ``pg_stat_replication`` has a walsender in state ``streaming`` for the
    standby, identified by the application_name its walreceiver presents (conninfo
    ``application_name``, else ``cluster_name``, else ``walreceiver``); when several
    share it, those whose reported flush LSN is not ahead of the standby's flushed LSN.
    """
    __tracebackhide__ = True  # pytest shows the caller's line, not ours
    with _targets((primary, "primary"), (standby, "standby")) as (p, s):
        last: list[_Report] = []

        def attempt() -> bool:
            report = _Report("assert_streaming", f"{s.label} from {p.label}")
            report.secrets |= p.secrets | s.secrets
            try:
                _streaming_check(p, s, report)
            except Exception as exc:  # reported, never a bare traceback mid-poll
                report.problem(f"check failed: {type(exc).__name__}: {_error_text(exc)}")
            last[:] = [report]
            return not report.problems

        try:
            poll_until(attempt, what="streaming", timeout=timeout, interval=0.1)
        except WaitTimeoutError:
            report = last[0]
            report.see(f"(still failing after {timeout:g}s of polling)")
            report.raise_if_problems()


def _streaming_check(p: _Target, s: _Target, report: _Report) -> None:
    pconn = _connect(p, report)
    sconn = _connect(s, report)
    try:
        if pconn is None or sconn is None:
            return
        senders = _walsenders(pconn)  # first: the standby's own positions only grow after
        recv = _rows(sconn, "SELECT * FROM pg_stat_wal_receiver")
        receiver = recv[0] if recv else None
        info = _read_conninfo_quietly(sconn)
        for text in (info, (receiver or {}).get("conninfo")):
            if text:
                report.secrets |= _passwords(text)
        cluster = _value(sconn, "SHOW cluster_name") or ""
        flushed = _value(sconn, "SELECT pg_last_wal_receive_lsn()::text")
        app_name = _receiver_app_name(receiver, info, cluster)

        if info:
            report.see(f"standby primary_conninfo: {_shown(info)}")
        if receiver is None:
            in_recovery = _value(sconn, "SELECT pg_is_in_recovery()")
            report.problem(
                "the standby has no WAL receiver (pg_stat_wal_receiver is empty): "
                + (
                    "it is in recovery but not connected to any primary"
                    if in_recovery
                    else "it is not in recovery at all"
                )
            )
        else:
            host, port = receiver.get("sender_host"), receiver.get("sender_port")
            report.see(
                f"standby pg_stat_wal_receiver: status={receiver.get('status')} "
                f"sender={host}:{port} flushed_lsn={receiver.get('flushed_lsn')} "
                f"slot={receiver.get('slot_name')}"
            )
            if receiver.get("status") is None:
                report.problem(
                    f"pg_stat_wal_receiver shows no status to user {s.params.get('user')!r}: "
                    "reading it needs pg_read_all_stats (GRANT pg_monitor TO that user)"
                )
            elif receiver.get("status") != "streaming":
                report.problem(
                    f"the standby's WAL receiver is {receiver.get('status')!r}, not 'streaming'"
                )
            hosts, wanted_port, how = _expected_sender(p, s, info, receiver)
            if host is not None and str(host) not in hosts:
                report.problem(
                    f"the standby streams from {host}:{port}, expected host "
                    f"{' or '.join(repr(h) for h in hosts[:4])} ({how})"
                )
            elif port is not None and str(port) != wanted_port:
                report.problem(
                    f"the standby streams from {host}:{port}, expected port {wanted_port} ({how})"
                )

        picked = _pick_walsenders(senders, app_name, flushed, pconn)
        for r in senders:
            report.see(f"primary {_show_sender(r)}")
        if not senders:
            report.see("primary pg_stat_replication: no walsender")
        streaming = [r for r in picked if r.get("state") == "streaming"]
        if not picked:
            report.problem(
                f"the primary has no walsender for application_name {app_name!r} "
                f"({len(senders)} walsender(s) in pg_stat_replication)"
            )
        elif all(r.get("state") is None for r in picked):
            report.problem(
                f"pg_stat_replication shows no state to user {p.params.get('user')!r}: reading "
                "other users' walsenders needs pg_read_all_stats (GRANT pg_monitor TO that user)"
            )
        elif not streaming:
            states = ", ".join(str(r.get("state")) for r in picked)
            report.problem(
                f"the primary's walsender for {app_name!r} is in state {states}, not 'streaming'"
            )
        elif len(picked) > 1:
            report.see(
                f"{len(picked)} walsenders share application_name {app_name!r}; set "
                "cluster_name or application_name to tell standbys apart"
            )
        _compare_system_ids(pconn, sconn, report)
    except psycopg.Error as exc:
        report.problem(f"query failed: {_error_text(exc)}")
    finally:
        for conn in (pconn, sconn):
            if conn is not None:
                conn.close()
    if report.problems:
        report.fix(
            "check the standby's log for the WAL receiver's error, and assert_primary_conninfo "
            "for where primary_conninfo points"
        )


def _read_conninfo_quietly(conn: Any) -> str | None:
    try:
        return _value(conn, "SHOW primary_conninfo")  # type: ignore[no-any-return]
    except psycopg.Error:
        return None


def _expected_sender(
    p: _Target, s: _Target, conninfo: str | None, receiver: dict[str, Any]
) -> tuple[list[str], str, str]:
    try:
        return p.address_for(s)
    except _FilesUnavailable:
        pass
    for text in (conninfo, receiver.get("conninfo")):
        if text:
            params = _parse_conninfo(text)
            hosts = (params.get("host") or params.get("hostaddr") or "").split(",")
            return hosts, params.get("port") or "5432", "the standby's primary_conninfo"
    return [str(receiver.get("sender_host"))], str(receiver.get("sender_port")), "unknown"


def _compare_system_ids(pconn: Any, sconn: Any, report: _Report) -> None:
    sql = "SELECT system_identifier::text FROM pg_control_system()"
    try:
        ids = _value(pconn, sql), _value(sconn, sql)
    except psycopg.Error as exc:
        report.see(f"system identifiers not compared: {_error_text(exc)}")
        return
    if ids[0] != ids[1]:
        report.problem(
            f"system identifiers differ (primary {ids[0]}, standby {ids[1]}): the standby is "
            "not a copy of this primary"
        )


# --------------------------------------------------------------------------------------
# assert_replication_lag

_LAG_PROBE_SQL = (
    f"CREATE TABLE IF NOT EXISTS {LAG_PROBE_TABLE} (id int PRIMARY KEY, written_at timestamptz)",
    f"INSERT INTO {LAG_PROBE_TABLE} VALUES (1, clock_timestamp()) "
    "ON CONFLICT (id) DO UPDATE SET written_at = excluded.written_at",
)


def assert_replication_lag(
    primary: ServerLike,
    standby: ServerLike,
    max_bytes: int | None = None,
    max_seconds: float | None = 2.0,
) -> ReplicationLag:
    """The standby is close behind the primary: by bytes, and by **measured** time.

    Bytes: ``pg_wal_lsn_diff(pg_current_wal_lsn() on the primary, pg_last_wal_replay_lsn()
    on the standby)``, checked against ``max_bytes`` (default None: reported, not checked;
    the seed promises seconds, and a byte count depends on the write rate).
    Time: upsert one row of ``pgstandby_lag_probe`` on the primary (created if missing),
    take ``pg_current_wal_lsn()``, and time until the standby's replay LSN passes it,
    waiting at most ``max_seconds`` plus a little (a quarter, at least 0.5 s). The seed's
    "usually 0-2 seconds behind" gives the default 2.0; ``None`` skips the write.
    ``pg_stat_replication.replay_lag`` is reported where the primary has it. A standby
    that does not accept a connection within the time bound fails, with the primary's
    view of it (pg_stat_replication) in the message.
    """
    __tracebackhide__ = True  # pytest shows the caller's line, not ours
    bound = max_seconds + max(0.5, max_seconds / 4) if max_seconds is not None else None
    with _targets((primary, "primary"), (standby, "standby")) as (p, s):
        report = _Report("assert_replication_lag", f"{s.label} behind {p.label}")
        report.secrets |= p.secrets | s.secrets
        pconn = _connect(p, report)
        if pconn is None:
            report.raise_if_problems()
        sconn = _connect(s, report, timeout=min(CONNECT_TIMEOUT, bound or CONNECT_TIMEOUT))
        try:
            return _measure_lag(pconn, sconn, report, max_bytes, max_seconds, bound)
        except psycopg.Error as exc:
            report.problem(f"query failed: {_error_text(exc)}")
            report.raise_if_problems()
            raise
        finally:
            pconn.close()
            if sconn is not None:
                sconn.close()


def _measure_lag(
    pconn: Any,
    sconn: Any,
    report: _Report,
    max_bytes: int | None,
    max_seconds: float | None,
    bound: float | None,
) -> ReplicationLag:
    __tracebackhide__ = True
    primary_lsn = standby_lsn = marker = None
    in_recovery = True
    lag_bytes: int | None = None
    seconds: float | None = None
    if _value(pconn, "SELECT pg_is_in_recovery()"):
        report.problem("the primary is in recovery: pass the primary first, then the standby")
        report.raise_if_problems()
    senders = _walsenders(pconn)
    app_name: str | None = None
    if sconn is not None:
        in_recovery = bool(_value(sconn, "SELECT pg_is_in_recovery()"))
        receiver = _rows(sconn, "SELECT * FROM pg_stat_wal_receiver")
        app_name = _receiver_app_name(
            receiver[0] if receiver else None,
            _read_conninfo_quietly(sconn),
            _value(sconn, "SHOW cluster_name") or "",
        )
        primary_lsn = _value(pconn, "SELECT pg_current_wal_lsn()::text")
        standby_lsn = _value(sconn, "SELECT pg_last_wal_replay_lsn()::text")
        if not in_recovery or standby_lsn is None:
            report.problem("the standby is not in recovery (no replay LSN): not a standby")
        else:
            lag_bytes = _lsn_diff(pconn, primary_lsn, standby_lsn)
    sender = _one_sender(senders, app_name, report)
    replay_lag = sender.get("replay_lag") if sender else None
    if sconn is None and sender is not None:
        primary_lsn = _value(pconn, "SELECT pg_current_wal_lsn()::text")
        standby_lsn = str(sender["replay_lsn"]) if sender.get("replay_lsn") else None
        lag_bytes = _lsn_diff(pconn, primary_lsn, standby_lsn) if standby_lsn else None
        report.see(
            f"standby unreachable; the primary's view (pg_stat_replication, as last reported by "
            f"the standby): replay_lsn={standby_lsn}"
        )
    report.see(
        f"byte lag: {_fmt_bytes(lag_bytes)} (primary pg_current_wal_lsn {primary_lsn}, standby "
        f"replay LSN {standby_lsn})"
    )
    report.see(f"pg_stat_replication.replay_lag (the primary's last estimate): {replay_lag}")
    if max_bytes is not None and lag_bytes is not None and lag_bytes > max_bytes:
        report.problem(f"byte lag {_fmt_bytes(lag_bytes)} exceeds max_bytes={max_bytes}")
    if max_seconds is not None and bound is not None and in_recovery:
        marker, seconds = _time_marker(pconn, sconn, sender, report, max_seconds, bound)
    if report.problems:
        report.fix(
            "see the standby's log (a replay conflict, a stopped WAL receiver, a slow disk), "
            "and assert_streaming for the connection itself"
        )
    report.raise_if_problems()
    return ReplicationLag(lag_bytes, seconds, primary_lsn, standby_lsn, marker, replay_lag)


def _lsn_diff(conn: Any, ahead: str | None, behind: str | None) -> int | None:
    if ahead is None or behind is None:
        return None
    diff = _value(conn, "SELECT pg_wal_lsn_diff(%s::pg_lsn, %s::pg_lsn)", [ahead, behind])
    return max(0, int(diff))


def _fmt_bytes(n: int | None) -> str:
    if n is None:
        return "unknown"
    return f"{n} bytes" if n < 1024 * 1024 else f"{n} bytes ({n / 1024 / 1024:.1f} MiB)"


def _one_sender(
    senders: list[dict[str, Any]], app_name: str | None, report: _Report
) -> dict[str, Any] | None:
    named = [r for r in senders if app_name is None or r.get("application_name") == app_name]
    for r in senders:
        report.see(f"primary {_show_sender(r)}")
    if not senders:
        report.see("primary pg_stat_replication: no walsender")
    return named[0] if len(named) == 1 else None


_LAG_TEMP_SQL = (
    f"CREATE TEMP TABLE IF NOT EXISTS {LAG_PROBE_TABLE}_tmp (id int)",
    f"DROP TABLE {LAG_PROBE_TABLE}_tmp",
)


def _time_marker(
    pconn: Any,
    sconn: Any,
    sender: dict[str, Any] | None,
    report: _Report,
    max_seconds: float,
    bound: float,
) -> tuple[str | None, float | None]:
    try:
        try:
            for sql in _LAG_PROBE_SQL:
                # a concurrent CREATE TABLE IF NOT EXISTS may win the race
                with suppress(psycopg.errors.UniqueViolation):
                    pconn.execute(sql)
        except psycopg.errors.InsufficientPrivilege as exc:
            # Without CREATE on the schema a temporary table still writes catalog WAL.
            report.see(f"marker: a temporary table ({LAG_PROBE_TABLE}: {_error_text(exc)})")
            for sql in _LAG_TEMP_SQL:
                pconn.execute(sql)
        started = time.monotonic()
        marker: str = _value(pconn, "SELECT pg_current_wal_lsn()::text")
    except psycopg.Error as exc:
        report.problem(f"cannot write the lag marker on the primary: {_error_text(exc)}")
        return None, None
    seen: dict[str, Any] = {}
    if sconn is not None:

        def replayed() -> bool:
            row = sconn.execute(
                "SELECT pg_last_wal_replay_lsn()::text, pg_last_wal_replay_lsn() >= %s::pg_lsn",
                [marker],
            ).fetchone()
            seen["lsn"] = row[0]
            return bool(row[1])

        where = "the standby's pg_last_wal_replay_lsn()"
    elif sender is not None:
        pid = sender["pid"]

        def replayed() -> bool:
            row = pconn.execute(
                "SELECT replay_lsn::text, replay_lsn >= %s::pg_lsn FROM pg_stat_replication "
                "WHERE pid = %s",
                [marker, pid],
            ).fetchone()
            seen["lsn"] = row[0] if row else None
            return bool(row and row[1])

        where = "replay_lsn the primary's walsender reports"
    else:
        report.problem(
            "the standby is unreachable and the primary has no walsender for it: "
            "replication lag cannot be measured"
        )
        return marker, None
    remaining = max(0.0, bound - (time.monotonic() - started))
    try:
        poll_until(replayed, what="the lag marker", timeout=remaining, interval=0.01)
    except WaitTimeoutError:
        waited = time.monotonic() - started
        report.problem(
            f"measured lag > {waited:.2f} s (max_seconds={max_seconds:g}): the marker written "
            f"on the primary at LSN {marker} was not replayed when the wait ended; {where} "
            f"stayed at {seen.get('lsn')}"
        )
        return marker, None
    seconds = time.monotonic() - started
    report.see(f"measured lag: {seconds:.3f} s until {where} passed the marker {marker}")
    if seconds > max_seconds:
        report.problem(
            f"measured lag {seconds:.2f} s exceeds max_seconds={max_seconds:g} "
            f"(marker LSN {marker}, now replayed: {seen.get('lsn')})"
        )
    return marker, seconds


# --------------------------------------------------------------------------------------
# waits

_CATCHUP_COLUMN = {"replay": "pg_last_wal_replay_lsn()", "receive": "pg_last_wal_receive_lsn()"}
_UPSTREAM_LSN_SQL = (
    "SELECT (CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() "
    "ELSE pg_current_wal_lsn() END)::text"
)


def wait_for_catchup(
    primary: ServerLike,
    standby: ServerLike,
    mode: Literal["replay", "receive"] = "replay",
    timeout: float = 30.0,
) -> str:
    """Wait until ``standby`` has received or replayed the primary's current WAL position;
    return that position. Raises WaitTimeoutError naming both LSNs. Nodes delegate to
    :meth:`Node.wait_for_catchup`."""
    if mode not in _CATCHUP_COLUMN:
        raise ValueError(f"unknown mode {mode!r}; use 'replay' or 'receive'")
    if isinstance(primary, Node) and isinstance(standby, Node):
        return primary.wait_for_catchup(standby, mode=mode, timeout=timeout)
    with _targets((primary, "primary"), (standby, "standby")) as (p, s):
        with p.connect(min(CONNECT_TIMEOUT, timeout)) as conn:
            target = str(_value(conn, _UPSTREAM_LSN_SQL))
        column = _CATCHUP_COLUMN[mode]
        seen: dict[str, Any] = {}

        def caught_up() -> bool:
            with s.connect(min(CONNECT_TIMEOUT, timeout)) as conn:
                row = conn.execute(
                    f"SELECT {column}::text, {column} >= %s::pg_lsn", [target]
                ).fetchone()
            seen["lsn"] = row[0] if row else None
            return bool(row and row[1])

        poll_until(
            caught_up,
            what=f"{s.label} to {mode} up to {target} of {p.label}",
            timeout=timeout,
            log=lambda: f"(standby {mode} LSN {seen.get('lsn')}, target {target})",
        )
        return target


def poll_query_until(
    server: ServerLike, sql: str, expected: Any = True, timeout: float = 30.0
) -> None:
    """Run ``sql`` until its first value equals ``expected``; WaitTimeoutError after
    ``timeout`` s with the last value seen. Nodes delegate to :meth:`Node.poll_query_until`."""
    if isinstance(server, Node):
        server.poll_query_until(sql, expected, timeout=timeout)
        return
    with _targets((server, "server")) as (t,):

        def check() -> bool:
            with t.connect(min(CONNECT_TIMEOUT, timeout)) as conn:
                value = _value(conn, sql)
            if value != expected:
                raise AssertionError(f"returned {value!r}")
            return True

        poll_until(check, what=f"`{sql}` on {t.label} to return {expected!r}", timeout=timeout)
