"""Where a standby's effective ``primary_conninfo`` points, compared with the primary as
the standby reaches it, and whether its user may replicate."""

from __future__ import annotations

import psycopg

from .._text import MASK
from .._wait import connect_budget
from ..backends.base import LOOPBACK
from ..node import Node, ServerLike
from .conninfo import (
    describe_sources,
    parse_conninfo,
    passwords,
    read_conninfo,
    winner_label,
)
from .report import Report, error_text
from .servers import CONNECT_TIMEOUT, connect, nodes, params_of, secrets_of


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
    found = nodes(*pairs)
    s = found[0]
    p = found[1] if len(found) > 1 else None
    report = Report("assert_primary_conninfo", s.label)
    report.secrets |= secrets_of(s) | (secrets_of(p) if p else set())
    conn = connect(s, report, "standby")
    try:
        info = read_conninfo(s, conn)
    finally:
        if conn is not None:
            conn.close()
    for a in info.assignments:
        report.secrets |= passwords(a.value)
    if info.effective:
        report.secrets |= passwords(info.effective)

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
            report.problem("primary_conninfo is empty: the standby has no primary to stream from")
        else:
            try:
                params = parse_conninfo(value)
            except psycopg.Error as exc:
                report.problem(f"primary_conninfo is not a valid conninfo: {error_text(exc)}")

    winner_at = winner_label(info)
    if params:
        checks: dict[str, tuple[list[str], str]] = {}
        if p is not None:
            addr = p.peer_address(s)
            checks["host"] = (addr.hosts, f"the primary's host, from {addr.how}")
            checks["port"] = ([addr.port], f"the primary's port, from {addr.how}")
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
                report.problem(f"{key} is {shown}, expected {wants} ({why}); set in {winner_at}")
        if p is not None and "user" not in expect:
            _check_replication_role(p, params.get("user"), report)
    describe_sources(info, report)
    if (
        p is not None
        and _mismatch(report, "host")
        and p.container_name() is None
        and params_of(p).get("host") in LOOPBACK
        and params.get("host") not in LOOPBACK
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


def _mismatch(report: Report, key: str) -> bool:
    return any(p.startswith(f"{key} is ") for p in report.problems)


def _check_replication_role(primary: Node, user: str | None, report: Report) -> None:
    if not user:
        report.problem("primary_conninfo names no user (libpq would use the OS account name)")
        return
    try:
        with primary.connect(connect_timeout=connect_budget(CONNECT_TIMEOUT)) as conn:
            row = conn.execute(
                "SELECT rolcanlogin, rolreplication FROM pg_roles WHERE rolname = %s", [user]
            ).fetchone()
    except psycopg.Error as exc:
        report.problem(f"cannot check role {user!r} on the primary: {error_text(exc)}")
        return
    if row is None:
        report.problem(f"user {user!r} does not exist on the primary")
    elif not (row[0] and row[1]):
        report.problem(
            f"role {user!r} on the primary lacks {'LOGIN' if not row[0] else 'REPLICATION'}"
        )
