"""What a server logged and who may log in: the checks of PostgreSQL's Cluster.pm
(``log_contains``, ``wait_for_log``, ``connect_ok``, ``connect_fails``), written once on
the handle's log and a connection, so that every backend has them.

>>> offset = standby.log_offset()                                     # doctest: +SKIP
>>> standby.kill_process("walreceiver")                               # doctest: +SKIP
>>> standby.wait_for_log(r"started streaming WAL", offset)            # doctest: +SKIP
"""

from __future__ import annotations

import re
from typing import Any

import psycopg
from psycopg.conninfo import make_conninfo

from ._text import mask_secrets, tail
from ._wait import NotYet, connect_budget, poll_until
from .backends.base import conninfo_params
from .errors import WaitTimeoutError
from .node_core import NodeCore


class CheckVerbs(NodeCore):
    """Log and connection checks of a node."""

    # the server's log ---------------------------------------------------------------------
    def log_offset(self) -> int:
        """Where the log ends now: give it to ``wait_for_log`` / ``log_contains`` to look
        only at what is logged after this point (Cluster.pm's ``current_log_position``)."""
        return len(self.log())

    def log_contains(self, pattern: str, offset: int = 0) -> bool:
        """Whether the log, from ``offset`` on, has a match of the regular expression."""
        return re.search(pattern, self.log()[offset:], re.MULTILINE) is not None

    def wait_for_log(self, pattern: str, offset: int = 0, timeout: float | None = None) -> int:
        """Wait until the log, from ``offset`` on, has a match of ``pattern``; returns the
        offset just past the match, to chain the next wait from. The timeout error names
        the pattern and shows the log's tail from ``offset``."""
        compiled = re.compile(pattern, re.MULTILINE)

        def found() -> int:
            text = self.log()
            match = compiled.search(text, offset)
            if match is None:
                raise NotYet(f"no match in {len(text) - offset} characters logged since {offset}")
            return match.end()

        return poll_until(
            found,
            what=f"{self.name}'s log to match {pattern!r} after offset {offset}",
            timeout=timeout or self.timeout,
            interval=0.1,
            log=lambda: self.log()[offset:],
        )

    # who may log in -----------------------------------------------------------------------
    def conninfo(self, **overrides: Any) -> str:
        """This node's DSN with keys replaced (``user="replicator"``) or removed (``None``:
        ``password=None`` connects with no password)."""
        params: dict[str, Any] = conninfo_params(self.dsn)
        for key, value in overrides.items():
            if value is None:
                params.pop(key, None)
            else:
                params[key] = str(value)
        params.setdefault("connect_timeout", str(connect_budget(self.timeout)))
        return make_conninfo("", **params)

    def connect_ok(
        self, sql: str = "SELECT 1", *, log_like: list[str] | None = None, **overrides: Any
    ) -> Any:
        """Log in with this node's DSN changed by ``overrides`` and run ``sql``; returns its
        first value. ``log_like``: patterns the server must log for this login (such as
        ``r"connection authenticated: .*method=scram-sha-256"``, given
        ``log_connections``). An AssertionError says what happened instead."""
        offset = self.log_offset() if log_like else 0
        shown = mask_secrets(self.conninfo(**overrides))
        try:
            with psycopg.connect(self.conninfo(**overrides), autocommit=True) as conn:
                row = conn.execute(sql.encode()).fetchone()
        except psycopg.Error as exc:
            raise AssertionError(
                f"connect_ok({shown}) on {self.name}: the login or `{sql}` failed: "
                f"{mask_secrets(str(exc)).strip()}"
            ) from None
        self._logged(log_like or [], offset, f"connect_ok({shown})")
        return row[0] if row else None

    def connect_fails(
        self, expected: str, *, log_like: list[str] | None = None, **overrides: Any
    ) -> str:
        """Log in with this node's DSN changed by ``overrides``, which must fail with an
        error matching the regular expression ``expected`` (and the server must log each of
        ``log_like``, such as ``r'no pg_hba.conf entry for host'``). Returns the error. An
        AssertionError says what happened instead: a login that succeeded, or another
        error."""
        offset = self.log_offset() if log_like else 0
        shown = mask_secrets(self.conninfo(**overrides))
        try:
            with psycopg.connect(self.conninfo(**overrides), autocommit=True) as conn:
                conn.execute("SELECT 1")
        except psycopg.Error as exc:
            error = mask_secrets(str(exc)).strip()
            if not re.search(expected, error):
                raise AssertionError(
                    f"connect_fails({shown}) on {self.name}: it failed, but not as expected "
                    f"({expected!r}): {error}"
                ) from None
            self._logged(log_like or [], offset, f"connect_fails({shown})")
            return error
        raise AssertionError(
            f"connect_fails({shown}) on {self.name}: the login succeeded; expected it to "
            f"fail with {expected!r}"
        )

    def _logged(self, patterns: list[str], offset: int, what: str) -> None:
        """Each pattern shows up in the log after ``offset`` within a few seconds (the
        server writes its log line after it answers the client)."""
        for pattern in patterns:
            try:
                self.wait_for_log(pattern, offset, timeout=min(self.timeout, 5))
            except WaitTimeoutError:
                raise AssertionError(
                    f"{what} on {self.name}: the server did not log {pattern!r}; its log since "
                    "the login:\n" + tail(self.log()[offset:])
                ) from None
