"""The connection a wait polls on (see ``Node._wait_connection``)."""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from collections.abc import Callable, Sequence
from typing import Any

import psycopg


class HeldConnection:
    """One connection for the whole of a wait: a poll then costs a query (~0.1 ms), not a
    new connection (a fork of a backend, ~3 ms; more through Docker's port proxy). After
    an error (a restarting server) it is dropped and made again at the next poll.

    A query on it is bounded like a connection attempt: a server that stops answering
    (paused, frozen) has its socket shut down after ``connect_timeout`` seconds, so that
    the wait fails with what it saw instead of hanging."""

    def __init__(
        self, connect: Callable[..., psycopg.Connection[Any]], connect_timeout: int
    ) -> None:
        self.connect = connect
        self.connect_timeout = connect_timeout
        self.conn: psycopg.Connection[Any] | None = None

    def row(
        self, sql: str, params: Sequence[Any] | None = None, bound: int | None = None
    ) -> tuple[Any, ...] | None:
        """The first row (None for a statement without rows); connecting and the query
        each take at most ``bound`` seconds (the wait's own connect budget), else this
        connection's."""
        bound = bound or self.connect_timeout
        kept = self.conn is not None
        if self.conn is None:
            self.conn = self.connect(connect_timeout=bound, application_name="pgstandby-wait")
        conn = self.conn
        watchdog = threading.Timer(bound, _sever, [conn])
        watchdog.start()
        try:
            cursor = conn.execute(sql.encode(), params)
            return cursor.fetchone() if cursor.description else None
        except psycopg.OperationalError:
            self.close()
            if kept and not watchdog.finished.is_set():
                # kept from before, and the server closed it since (a restart, a
                # snapshot's clean stop): never raised, made anew once
                watchdog.cancel()
                return self.row(sql, params, bound)
            raise
        except psycopg.Error:
            self.close()
            raise
        finally:
            watchdog.cancel()

    def close(self) -> None:
        if self.conn is not None:
            conn, self.conn = self.conn, None
            conn.close()

    def __enter__(self) -> HeldConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _sever(conn: psycopg.Connection[Any]) -> None:
    """Shut the connection's socket down under libpq: its pending read ends at once."""
    with (
        contextlib.suppress(OSError, psycopg.Error),
        socket.socket(fileno=os.dup(conn.pgconn.socket)) as sock,
    ):
        sock.shutdown(socket.SHUT_RDWR)
