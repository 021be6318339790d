"""What a failing test's report carries of the clusters it used (``report`` setting):

- ``short`` (default): one line per server (role, LSNs, streaming or not); and, when the
  failure is the harness's own (its errors, its assertion helpers), the setup output and
  the last 30 log lines of the nodes that error names (all nodes if it names none). A
  failure of the application's own code gets the state lines only.
- ``full``: every node's setup output and log tail (200 lines).
- ``none``: nothing.
"""

from __future__ import annotations

import re

import psycopg

from ._text import mask_secrets
from .assertions.report import ReplicationAssertionError
from .cluster import Cluster
from .errors import PgStandbyError
from .node import Node

SHORT_LINES = 30
FULL_LINES = 200


def sections(cluster: Cluster, mode: str, error: BaseException | None) -> list[tuple[str, str]]:
    """(title, text) pairs for the report of a test that failed with ``error``."""
    if mode == "none" or not hasattr(cluster, "primary"):
        return []
    if mode == "full":
        return [(f"pgstandby {label}", text) for label, text in cluster.logs(FULL_LINES).items()]
    out = [("pgstandby servers", state(cluster))]
    for node in involved(cluster, error):
        for label, read in (("setup", node.setup_output), ("log", node.log)):
            try:
                lines = read().splitlines()[-SHORT_LINES:]
            except OSError as exc:
                lines = [f"(unreadable: {exc})"]
            if lines:
                title = f"pgstandby {node.name} {label} (last {SHORT_LINES} lines)"
                out.append((title, mask_secrets("\n".join(lines))))
    return out


def involved(cluster: Cluster, error: BaseException | None) -> list[Node]:
    """The nodes a harness error names; every node for a harness error naming none; no
    node for any other failure (the application's own code)."""
    if not isinstance(error, PgStandbyError | ReplicationAssertionError):
        return []
    text = str(error)
    named = [n for n in cluster.nodes if re.search(rf"\b{re.escape(n.name)}\b", text)]
    return named or cluster.nodes


def state(cluster: Cluster) -> str:
    """One line per server: what runs, its role, its LSNs, whether it streams."""
    return "\n".join([cluster.servers_heading(), *(server_line(n) for n in cluster.nodes)])


_STATE = """
SELECT pg_is_in_recovery(),
       CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_current_wal_lsn()::text END,
       pg_last_wal_receive_lsn()::text, pg_last_wal_replay_lsn()::text,
       (SELECT status || ' from ' || coalesce(sender_host, '?') || ':' ||
               coalesce(sender_port::text, '?') FROM pg_stat_wal_receiver),
       (SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming')
"""


def server_line(node: Node) -> str:
    """``standby1: standby, streaming from 127.0.0.1:5432, received 0/3000148, replayed
    0/3000148`` (a server that does not answer within 2 s says why)."""
    try:
        with psycopg.connect(node.dsn, connect_timeout=2, autocommit=True) as conn:
            conn.execute("SET statement_timeout = '2s'")
            row = conn.execute(_STATE).fetchone()
    except psycopg.Error as exc:
        why = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return f"{node.name}: not answering ({mask_secrets(why)})"
    assert row is not None
    recovery, insert, received, replayed, receiver, senders = row
    if not recovery:
        return f"{node.name}: primary, WAL at {insert}, {senders} standby(s) streaming from it"
    how = receiver or "not streaming"
    return f"{node.name}: standby, {how}, received {received}, replayed {replayed}"
