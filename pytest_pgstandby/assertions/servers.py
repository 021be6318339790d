"""How the checks reach the servers they grade: one ``Node`` per argument (a Node, a
``Server(...)`` or a DSN becomes an external node), bounded connections, rows as dicts,
and the data directory's files, with the reason when they cannot be read."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg

from .._wait import connect_budget
from ..backends.base import conninfo_params
from ..errors import FilesUnavailableError, PgStandbyError
from ..node import Node, ServerLike, as_node
from .report import Report, error_text

#: Seconds any single connection attempt of a check may take (libpq counts whole seconds,
#: at least 2; see connect_budget).
CONNECT_TIMEOUT = 5.0


def nodes(*pairs: tuple[ServerLike, str]) -> list[Node]:
    """A Node for each (server, role) argument; ``role`` names it in messages."""
    return [as_node(server, role) for server, role in pairs]


def params_of(node: Node) -> dict[str, str]:
    return conninfo_params(node.dsn)


def secrets_of(node: Node) -> set[str]:
    password = params_of(node).get("password")
    return {password} if password else set()


def connect(
    node: Node, report: Report, role: str, timeout: float = CONNECT_TIMEOUT
) -> psycopg.Connection[Any] | None:
    """A connection, or None after recording why there is none."""
    try:
        return node.connect(connect_timeout=connect_budget(timeout))
    except psycopg.Error as exc:
        report.problem(f"cannot connect to the {role}: {error_text(exc)}")
        return None


def rows(conn: Any, sql: str, params: Sequence[Any] | None = None) -> list[dict[str, Any]]:
    cur = conn.execute(sql, params)
    if cur.description is None:
        return []
    names = [c.name for c in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def scalar(conn: Any, sql: str, params: Sequence[Any] | None = None) -> Any:
    row = conn.execute(sql, params).fetchone()
    return row[0] if row else None


def files_where(node: Node) -> str:
    """The data directory, for messages (with the node's name where it has one)."""
    named = f" (node {node.handle.name})" if node.handle.name else ""
    return node.file_location() + named


def read_or_none(node: Node, relpath: str) -> str | None:
    """A file's text, or None when it does not exist; FilesUnavailableError when the data
    directory cannot be read at all."""
    try:
        return node.read_file(relpath)
    except FileNotFoundError:
        return None
    except FilesUnavailableError:
        raise
    except (OSError, PgStandbyError) as exc:
        raise FilesUnavailableError(
            f"cannot read {relpath} in {files_where(node)}: {error_text(exc)}"
        ) from None


def file_exists(node: Node, relpath: str) -> bool:
    try:
        return node.file_exists(relpath)
    except OSError as exc:
        raise FilesUnavailableError(f"cannot look into {files_where(node)}: {exc}") from None
