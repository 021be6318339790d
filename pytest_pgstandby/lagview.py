"""Lag you can look at: a live table (``pgstandby lab status --watch``) and a PNG of the
primary's insert LSN against the standby's replay LSN (``pgstandby lab lag``).

(Being written: see the helper's report.)"""

from __future__ import annotations

from .assertions import Server


def watch(
    primary: Server, standby: Server, *, interval: float = 1.0, count: int | None = None
) -> int:
    raise NotImplementedError


def lag_command(primary: Server, standby: Server, *, seconds: float, load: bool, out: str) -> int:
    raise NotImplementedError
