"""What the two ends of a replication connection say: the primary's walsenders
(``pg_stat_replication``) and the application_name by which a standby is known there."""

from __future__ import annotations

from typing import Any

import psycopg

from .conninfo import parse_conninfo
from .servers import rows, scalar

#: The columns of the two views the harness reads, each with the major that brought it
#: (PostgreSQL 10 names the views' first form; the procedure's floor is 12). The one
#: rename in that range: pg_stat_wal_receiver's flushed_lsn was received_lsn before 13
#: (``receiver_flushed``). tests/replication_suite.py checks every column on every version
#: the matrix runs.
COLUMNS_READ: dict[str, dict[str, int]] = {
    "pg_stat_replication": {
        "pid": 10,
        "application_name": 10,
        "client_addr": 10,
        "state": 10,
        "sent_lsn": 10,
        "flush_lsn": 10,
        "replay_lsn": 10,
        "replay_lag": 10,
        "sync_state": 10,
    },
    "pg_stat_wal_receiver": {
        "status": 10,
        "received_tli": 10,
        "slot_name": 10,
        "sender_host": 11,
        "sender_port": 11,
        "conninfo": 10,
        "flushed_lsn": 13,
    },
}


def receiver_flushed(receiver: dict[str, Any]) -> Any:
    """The last WAL position the receiver flushed: ``flushed_lsn``, ``received_lsn``
    before PostgreSQL 13."""
    return receiver.get("flushed_lsn", receiver.get("received_lsn"))


def walsenders(conn: Any) -> list[dict[str, Any]]:
    return [
        r for r in rows(conn, "SELECT * FROM pg_stat_replication") if r.get("state") != "backup"
    ]


def receiver_app_name(receiver: dict[str, Any] | None, conninfo: str | None, cluster: str) -> str:
    """The application_name a standby's walreceiver presents to the primary."""
    for text in (receiver or {}).get("conninfo"), conninfo:
        if text:
            try:
                params = parse_conninfo(text)
            except psycopg.Error:
                continue
            if params.get("application_name"):
                return params["application_name"]
    return cluster or "walreceiver"


def pick_walsenders(
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
        or scalar(conn, "SELECT %s::pg_lsn <= %s::pg_lsn", [str(r["flush_lsn"]), flushed])
    ]
    return kept or named


def show_sender(r: dict[str, Any]) -> str:
    return (
        f"walsender pid {r.get('pid')} application_name={r.get('application_name')!r} "
        f"client_addr={r.get('client_addr')} state={r.get('state')} sent={r.get('sent_lsn')} "
        f"flush={r.get('flush_lsn')} replay={r.get('replay_lsn')} replay_lag={r.get('replay_lag')}"
    )


def read_conninfo_quietly(conn: Any) -> str | None:
    try:
        return scalar(conn, "SHOW primary_conninfo")  # type: ignore[no-any-return]
    except psycopg.Error:
        return None
