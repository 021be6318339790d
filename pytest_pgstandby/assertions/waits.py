"""The module-level waits: each turns its arguments into Nodes and asks
:meth:`Node.wait_for_catchup` / :meth:`Node.poll_query_until`, the only waits there are."""

from __future__ import annotations

from typing import Any

from ..node import CatchupMode, ServerLike
from .servers import nodes


def wait_for_catchup(
    primary: ServerLike,
    standby: ServerLike,
    mode: CatchupMode = "replay",
    timeout: float | None = None,
) -> str:
    """Wait until ``standby`` has received or replayed the upstream's current WAL position
    (its replay position if the upstream is itself a standby); return that position.
    WaitTimeoutError names both LSNs. ``timeout`` defaults to the settings' timeout (60 s).
    """
    upstream, downstream = nodes((primary, "primary"), (standby, "standby"))
    return upstream.wait_for_catchup(downstream, mode=mode, timeout=timeout)


def poll_query_until(
    server: ServerLike, sql: str, expected: Any = True, timeout: float | None = None
) -> None:
    """Run ``sql`` until its first value equals ``expected``; WaitTimeoutError after
    ``timeout`` s (default: the settings' timeout, 60 s) with the last value seen."""
    (node,) = nodes((server, "server"))
    node.poll_query_until(sql, expected, timeout=timeout)
