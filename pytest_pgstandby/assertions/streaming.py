"""Is the standby streaming from this primary: its WAL receiver, the primary's
walsender for it, and one system identifier on both."""

from __future__ import annotations

from typing import Any

import psycopg

from .._wait import poll_until
from ..errors import WaitTimeoutError
from ..node import Node, ServerLike
from .conninfo import passwords, shown
from .report import Report, error_text
from .servers import connect, nodes, params_of, rows, scalar, secrets_of
from .walsenders import (
    pick_walsenders,
    read_conninfo_quietly,
    receiver_app_name,
    receiver_flushed,
    show_sender,
    walsenders,
)


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
    p, s = nodes((primary, "primary"), (standby, "standby"))
    last: list[Report] = []

    def attempt() -> bool:
        report = Report("assert_streaming", f"{s.label} from {p.label}")
        report.secrets |= secrets_of(p) | secrets_of(s)
        final = False
        try:
            final = _streaming_check(p, s, report)
        except Exception as exc:  # reported, never a bare traceback mid-poll
            report.problem(f"check failed: {type(exc).__name__}: {error_text(exc)}")
        last[:] = [report]
        return not report.problems or final  # final: no wait can change it, said at once

    try:
        poll_until(attempt, what="streaming", timeout=timeout, interval=0.1)
    except WaitTimeoutError:
        last[0].see(f"(still failing after {timeout:g}s of polling)")
    if last[0].problems:
        last[0].raise_if_problems()


def _streaming_check(p: Node, s: Node, report: Report) -> bool:
    """Check once; True when what failed cannot change by waiting (the standby is not in
    recovery, or is a copy of another primary)."""
    final = False
    pconn = connect(p, report, "primary")
    sconn = connect(s, report, "standby")
    try:
        if pconn is None or sconn is None:
            return False
        senders = walsenders(pconn)  # first: the standby's own positions only grow after
        recv = rows(sconn, "SELECT * FROM pg_stat_wal_receiver")
        receiver = recv[0] if recv else None
        info = read_conninfo_quietly(sconn)
        for text in (info, (receiver or {}).get("conninfo")):
            if text:
                report.secrets |= passwords(text)
        cluster = scalar(sconn, "SHOW cluster_name") or ""
        flushed = scalar(sconn, "SELECT pg_last_wal_receive_lsn()::text")
        app_name = receiver_app_name(receiver, info, cluster)

        if info:
            report.see(f"standby primary_conninfo: {shown(info)}")
        if receiver is None:
            in_recovery = scalar(sconn, "SELECT pg_is_in_recovery()")
            final = not in_recovery  # only a restart (a new standby.signal) would change it
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
                f"sender={host}:{port} flushed_lsn={receiver_flushed(receiver)} "
                f"slot={receiver.get('slot_name')}"
            )
            if receiver.get("status") is None:
                report.problem(
                    f"pg_stat_wal_receiver shows no status to user {params_of(s).get('user')!r}: "
                    "reading it needs pg_read_all_stats (GRANT pg_monitor TO that user)"
                )
            elif receiver.get("status") != "streaming":
                report.problem(
                    f"the standby's WAL receiver is {receiver.get('status')!r}, not 'streaming'"
                )
            addr = p.peer_address(s)
            hosts, wanted_port, how = addr.hosts, addr.port, addr.how
            if host is not None and str(host) not in hosts:
                report.problem(
                    f"the standby streams from {host}:{port}, expected host "
                    f"{' or '.join(repr(h) for h in hosts[:4])} ({how})"
                )
            elif port is not None and str(port) != wanted_port:
                report.problem(
                    f"the standby streams from {host}:{port}, expected port {wanted_port} ({how})"
                )

        picked = pick_walsenders(senders, app_name, flushed, pconn)
        for r in senders:
            report.see(f"primary {show_sender(r)}")
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
                f"pg_stat_replication shows no state to user {params_of(p).get('user')!r}: reading "
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
        final = _compare_system_ids(pconn, sconn, report) or final
    except psycopg.Error as exc:
        report.problem(f"query failed: {error_text(exc)}")
    finally:
        for conn in (pconn, sconn):
            if conn is not None:
                conn.close()
    if report.problems:
        report.fix(
            "check the standby's log for the WAL receiver's error, and assert_primary_conninfo "
            "for where primary_conninfo points"
        )
    return final


def _compare_system_ids(pconn: Any, sconn: Any, report: Report) -> bool:
    """Whether the two differ (reported)."""
    sql = "SELECT system_identifier::text FROM pg_control_system()"
    try:
        ids = scalar(pconn, sql), scalar(sconn, sql)
    except psycopg.Error as exc:
        report.see(f"system identifiers not compared: {error_text(exc)}")
        return False
    if ids[0] != ids[1]:
        report.problem(
            f"system identifiers differ (primary {ids[0]}, standby {ids[1]}): the standby is "
            "not a copy of this primary"
        )
        return True
    return False
