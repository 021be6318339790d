"""Is it a standby at all: ``standby.signal`` with ``pg_is_in_recovery()``, and writes
refused with SQLSTATE 25006."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg

from ..errors import FilesUnavailableError
from ..node import ServerLike
from .report import Report, error_text
from .servers import connect, file_exists, files_where, nodes, scalar, secrets_of

READ_ONLY_SQLSTATE = "25006"  # read_only_sql_transaction


def assert_standby_signal(standby: ServerLike) -> None:
    """``standby.signal`` exists in the data directory **and** the server behaves as a
    standby (``pg_is_in_recovery()``). The message says which of the two failed, or both.

    >>> assert_standby_signal(cluster.standby)                       # doctest: +SKIP
    """
    __tracebackhide__ = True  # pytest shows the caller's line, not ours
    (s,) = nodes((standby, "standby"))
    report = Report("assert_standby_signal", s.label)
    report.secrets |= secrets_of(s)
    try:
        present: bool | None = file_exists(s, "standby.signal")
        if present:
            report.see(f"standby.signal is present in {files_where(s)}")
    except FilesUnavailableError as exc:
        present = None
        report.problem(f"standby.signal could not be checked: {exc}")
    if present is False:
        report.problem(f"standby.signal is missing from the data directory {files_where(s)}")
        try:
            if file_exists(s, "recovery.signal"):
                report.see("recovery.signal is present (archive recovery, not a standby)")
        except FilesUnavailableError:
            pass
    conn = connect(s, report, "standby")
    in_recovery = None
    if conn is not None:
        try:
            with conn:
                in_recovery = bool(scalar(conn, "SELECT pg_is_in_recovery()"))
        except psycopg.Error as exc:
            report.problem(f"SELECT pg_is_in_recovery() failed: {error_text(exc)}")
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
    (s,) = nodes((standby, "standby"))
    report = Report("assert_read_only", s.label)
    report.secrets |= secrets_of(s)
    conn = connect(s, report, "standby")
    if conn is None:
        report.raise_if_problems()
    assert conn is not None  # connect() recorded a problem when it had no connection
    try:
        with conn:
            _read_only_probes(conn, report)
    except psycopg.Error as exc:
        report.problem(f"query failed: {error_text(exc)}")
    if report.problems:
        report.fix(
            "a standby is read-only because it is in recovery; a writable one was promoted "
            "or started without standby.signal. Rebuild it from the primary"
        )
    report.raise_if_problems()


def _read_only_probes(conn: Any, report: Report) -> None:
    """pg_is_in_recovery, transaction_read_only, and the write probes (rolled back)."""
    in_recovery = bool(scalar(conn, "SELECT pg_is_in_recovery()"))
    read_only = scalar(conn, "SHOW transaction_read_only")
    report.see(f"pg_is_in_recovery() -> {in_recovery}; transaction_read_only = {read_only}")
    if not in_recovery:
        report.problem("pg_is_in_recovery() is false: the server is a primary")
    if read_only != "on":
        report.problem(f"SHOW transaction_read_only is {read_only!r}, expected 'on'")
    probe = f"pgstandby_ro_probe_{uuid.uuid4().hex[:12]}"
    _probe_write(conn, f"CREATE TABLE {probe} (id int)", report)
    table = scalar(conn, _USER_TABLE_SQL)
    if table:
        # Zero rows, zero columns: refused at executor start on a read-only server, changes
        # nothing on a writable one, and no column (generated, NOT NULL) gets in the way.
        _probe_write(conn, f"INSERT INTO {table} SELECT WHERE false", report)
    else:
        report.see("no user table to INSERT into; only CREATE TABLE was tried")
    if scalar(conn, "SELECT to_regclass(%s) IS NOT NULL", [probe]):
        conn.execute(f"DROP TABLE IF EXISTS {probe}")
        report.problem(f"probe table {probe} existed after the check (dropped it)")
    else:
        report.see(f"afterwards: table {probe} does not exist (nothing changed)")


def _probe_write(conn: Any, sql: str, report: Report) -> None:
    try:
        with conn.transaction(force_rollback=True):
            conn.execute(sql)
    except psycopg.Error as exc:
        state = getattr(exc, "sqlstate", None)
        if state == READ_ONLY_SQLSTATE:
            report.see(f"{sql}: refused, SQLSTATE {state} ({error_text(exc).split(' (')[0]})")
        else:
            report.problem(
                f"{sql}: refused with {error_text(exc)}, expected SQLSTATE "
                f"{READ_ONLY_SQLSTATE} (read_only_sql_transaction)"
            )
        return
    report.problem(f"the write succeeded: `{sql}` ran without error (rolled back)")
