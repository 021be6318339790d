"""What the two ends of a replication connection say: the primary's walsenders
(``pg_stat_replication``) and the application_name by which a standby is known there."""

from __future__ import annotations

from typing import Any

import psycopg

from .conninfo import parse_conninfo
from .servers import rows, scalar


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
