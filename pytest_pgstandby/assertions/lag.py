"""How far behind the standby is: bytes, and the measured time until a marker written on
the primary is replayed."""

from __future__ import annotations

import time
from contextlib import suppress
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import psycopg
import psycopg.errors

from .._text import human_bytes
from .._wait import poll_until
from ..errors import WaitTimeoutError
from ..node import ServerLike
from .report import ReplicationAssertionError, Report, error_text
from .servers import CONNECT_TIMEOUT, connect, nodes, rows, scalar, secrets_of
from .walsenders import (
    pick_walsenders,
    read_conninfo_quietly,
    receiver_app_name,
    show_sender,
    walsenders,
)

LAG_PROBE_TABLE = "pgstandby_lag_probe"


@dataclass(frozen=True)
class ReplicationLag:
    """What :func:`assert_replication_lag` measured (it returns this when the check passes)."""

    lag_bytes: int | None
    lag_seconds: float | None  # marker written on the primary until the standby replayed it
    primary_lsn: str | None
    standby_replay_lsn: str | None
    marker_lsn: str | None
    replay_lag: timedelta | None  # pg_stat_replication.replay_lag, as the primary reports it


@dataclass(frozen=True)
class LagSample:
    """One look at both ends: ``t`` seconds after the first look, the primary's LSN, the
    standby's replay LSN, the byte lag between them (never negative), and
    ``pg_stat_replication.replay_lag`` where it was read."""

    t: float
    primary_lsn: str | None
    standby_lsn: str | None
    lag_bytes: int | None
    replay_lag: timedelta | None = None


def lsn_bytes(lsn: str) -> int:
    """A pg_lsn's text (``'0/3000148'``) as a byte position, as ``pg_wal_lsn_diff`` counts.

    >>> lsn_bytes("1/0") - lsn_bytes("0/FFFFFFFF")
    1
    """
    high, low = lsn.split("/")
    return (int(high, 16) << 32) | int(low, 16)


class ReplicationLagError(ReplicationAssertionError):
    """assert_replication_lag failed. ``lag_samples`` holds the LSNs it saw while it
    waited (the plugin puts them, as a table and a picture, into the failing test's report)."""

    def __init__(self, message: str, problems: list[str], lag_samples: list[LagSample]) -> None:
        super().__init__(message, problems)
        self.lag_samples = lag_samples


class _Samples:
    """The LSNs a check saw, in order, timed from the first."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.samples: list[LagSample] = []

    def add(
        self, primary: str | None, standby: str | None, replay_lag: timedelta | None = None
    ) -> None:
        lag = max(0, lsn_bytes(primary) - lsn_bytes(standby)) if primary and standby else None
        t = time.monotonic() - self.started
        self.samples.append(LagSample(t, primary, standby, lag, replay_lag))

    def raise_if_problems(self, report: Report) -> None:
        """Report.raise_if_problems, with the samples on the error."""
        __tracebackhide__ = True
        if report.problems:
            problems = [report.scrub(p) for p in report.problems]
            raise ReplicationLagError(report.render(), problems, self.samples)
        report.raise_if_problems()


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
    view of it (pg_stat_replication) in the message. A failure is a
    :class:`ReplicationLagError` carrying the LSNs seen while waiting (``lag_samples``).
    """
    __tracebackhide__ = True  # pytest shows the caller's line, not ours
    bound = max_seconds + max(0.5, max_seconds / 4) if max_seconds is not None else None
    p, s = nodes((primary, "primary"), (standby, "standby"))
    report = Report("assert_replication_lag", f"{s.label} behind {p.label}")
    report.secrets |= secrets_of(p) | secrets_of(s)
    pconn = connect(p, report, "primary")
    if pconn is None:
        report.raise_if_problems()
    assert pconn is not None  # connect() recorded a problem when it had no connection
    sconn = connect(s, report, "standby", timeout=min(CONNECT_TIMEOUT, bound or CONNECT_TIMEOUT))
    seen = _Samples()
    try:
        # unreachable, a standby is known on the primary only by the name the harness
        # gave it (its cluster_name, the walreceiver's application_name)
        known = s.handle.name or None
        return _measure_lag(pconn, sconn, report, max_bytes, max_seconds, bound, seen, known)
    except psycopg.Error as exc:
        report.problem(f"query failed: {error_text(exc)}")
        seen.raise_if_problems(report)
        raise
    finally:
        pconn.close()
        if sconn is not None:
            sconn.close()


def _measure_lag(
    pconn: Any,
    sconn: Any,
    report: Report,
    max_bytes: int | None,
    max_seconds: float | None,
    bound: float | None,
    seen: _Samples,
    known: str | None = None,
) -> ReplicationLag:
    __tracebackhide__ = True
    primary_lsn = standby_lsn = marker = None
    in_recovery = True
    lag_bytes: int | None = None
    seconds: float | None = None
    if scalar(pconn, "SELECT pg_is_in_recovery()"):
        report.problem("the primary is in recovery: pass the primary first, then the standby")
        seen.raise_if_problems(report)
    senders = walsenders(pconn)
    app_name: str | None = known
    flushed: str | None = None
    if sconn is not None:
        in_recovery = bool(scalar(sconn, "SELECT pg_is_in_recovery()"))
        receiver = rows(sconn, "SELECT * FROM pg_stat_wal_receiver")
        app_name = receiver_app_name(
            receiver[0] if receiver else None,
            read_conninfo_quietly(sconn),
            scalar(sconn, "SHOW cluster_name") or "",
        )
        flushed = scalar(sconn, "SELECT pg_last_wal_receive_lsn()::text")
        primary_lsn = scalar(pconn, "SELECT pg_current_wal_lsn()::text")
        standby_lsn = scalar(sconn, "SELECT pg_last_wal_replay_lsn()::text")
        if not in_recovery or standby_lsn is None:
            report.problem("the standby is not in recovery (no replay LSN): not a standby")
        else:
            lag_bytes = _lsn_diff(pconn, primary_lsn, standby_lsn)
    sender = _one_sender(senders, app_name, flushed, pconn, report)
    replay_lag = sender.get("replay_lag") if sender else None
    if sconn is not None:
        seen.add(primary_lsn, standby_lsn, replay_lag)
    if sconn is None and sender is not None:
        primary_lsn = scalar(pconn, "SELECT pg_current_wal_lsn()::text")
        standby_lsn = str(sender["replay_lsn"]) if sender.get("replay_lsn") else None
        lag_bytes = _lsn_diff(pconn, primary_lsn, standby_lsn) if standby_lsn else None
        seen.add(primary_lsn, standby_lsn, replay_lag)
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
        marker, seconds = _time_marker(pconn, sconn, sender, report, max_seconds, bound, seen)
    if report.problems:
        report.fix(
            "see the standby's log (a replay conflict, a stopped WAL receiver, a slow disk), "
            "and assert_streaming for the connection itself"
        )
    seen.raise_if_problems(report)
    return ReplicationLag(lag_bytes, seconds, primary_lsn, standby_lsn, marker, replay_lag)


def _lsn_diff(conn: Any, ahead: str | None, behind: str | None) -> int | None:
    if ahead is None or behind is None:
        return None
    diff = scalar(conn, "SELECT pg_wal_lsn_diff(%s::pg_lsn, %s::pg_lsn)", [ahead, behind])
    return max(0, int(diff))


def _fmt_bytes(n: int | None) -> str:
    if n is None:
        return "unknown"
    return f"{n} bytes" if n < 1024 * 1024 else f"{n} bytes ({human_bytes(n)})"


def _one_sender(
    senders: list[dict[str, Any]],
    app_name: str | None,
    flushed: str | None,
    conn: Any,
    report: Report,
) -> dict[str, Any] | None:
    """The standby's walsender by the one rule (``pick_walsenders``). With no standby to
    ask (unreachable) and no name it is known by, none: another standby's walsender must
    never be graded as this one's."""
    named = [] if app_name is None else pick_walsenders(senders, app_name, flushed, conn)
    for r in senders:
        report.see(f"primary {show_sender(r)}")
    if not senders:
        report.see("primary pg_stat_replication: no walsender")
    elif app_name is None:
        report.see(
            f"standby unreachable and known by no name here: which of the primary's "
            f"{len(senders)} walsender(s) serves it cannot be told, so none is graded"
        )
    return named[0] if len(named) == 1 else None


_LAG_TEMP_SQL = (
    f"CREATE TEMP TABLE IF NOT EXISTS {LAG_PROBE_TABLE}_tmp (id int)",
    f"DROP TABLE {LAG_PROBE_TABLE}_tmp",
)


def _time_marker(
    pconn: Any,
    sconn: Any,
    sender: dict[str, Any] | None,
    report: Report,
    max_seconds: float,
    bound: float,
    samples: _Samples,
) -> tuple[str | None, float | None]:
    try:
        try:
            for sql in _LAG_PROBE_SQL:
                # a concurrent CREATE TABLE IF NOT EXISTS may win the race
                with suppress(psycopg.errors.UniqueViolation):
                    pconn.execute(sql)
        except psycopg.errors.InsufficientPrivilege as exc:
            # Without CREATE on the schema a temporary table still writes catalog WAL.
            report.see(f"marker: a temporary table ({LAG_PROBE_TABLE}: {error_text(exc)})")
            for sql in _LAG_TEMP_SQL:
                pconn.execute(sql)
        started = time.monotonic()
        marker: str = scalar(pconn, "SELECT pg_current_wal_lsn()::text")
    except psycopg.Error as exc:
        report.problem(f"cannot write the lag marker on the primary: {error_text(exc)}")
        return None, None
    seen: dict[str, Any] = {}
    if sconn is not None:

        def replayed() -> bool:
            row = sconn.execute(
                "SELECT pg_last_wal_replay_lsn()::text, pg_last_wal_replay_lsn() >= %s::pg_lsn",
                [marker],
            ).fetchone()
            seen["lsn"] = row[0]
            samples.add(marker, row[0])  # the primary's last known position: the marker
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
            samples.add(marker, seen["lsn"])
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
