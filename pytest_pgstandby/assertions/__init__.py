"""Assertion helpers that grade a primary/standby pair, with or without pytest.

Every helper takes a :class:`~pytest_pgstandby.cluster.Node`, a plain libpq DSN, or a
:class:`Server` describing a server the harness did not start; the last two become
external Nodes, so every check asks a Node only and the same checks grade a harness pair,
the classroom lab, or a student's hand-built pair:

>>> from pytest_pgstandby.assertions import Server, assert_standby_signal
>>> assert_standby_signal(Server("host=127.0.0.1 port=5433 user=postgres",
...                              data_dir="/srv/standby"))            # doctest: +SKIP

A failed check raises :class:`ReplicationAssertionError` (an ``AssertionError``) whose
multi-line message lists each problem, what was observed, and how to fix it; passwords in
any conninfo are masked. Every connection is bounded by ``connect_timeout`` and every wait
by a timeout, so a frozen server fails a check instead of hanging it.
See docs/assertions.md for the SQL each helper runs and real failure output.

One job per module: ``report`` (messages and masking), ``servers`` (reaching a Node),
``conninfo`` (where primary_conninfo is set), ``walsenders`` (pg_stat_replication),
then one module per check, and ``waits``.
"""

from __future__ import annotations

from ..backends.external import Server
from ..node import ServerLike
from .lag import LAG_PROBE_TABLE, ReplicationLag, assert_replication_lag
from .primary_conninfo import assert_primary_conninfo
from .report import ReplicationAssertionError
from .servers import CONNECT_TIMEOUT
from .standby import READ_ONLY_SQLSTATE, assert_read_only, assert_standby_signal
from .streaming import assert_streaming
from .waits import poll_query_until, wait_for_catchup

__all__ = [
    "CONNECT_TIMEOUT",
    "LAG_PROBE_TABLE",
    "READ_ONLY_SQLSTATE",
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
