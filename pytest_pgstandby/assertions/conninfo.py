"""A standby's ``primary_conninfo``: its effective value (``pg_settings``) and every line
of ``postgresql.conf`` / ``postgresql.auto.conf`` that sets it, with the one that wins."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any

import psycopg
import psycopg.errors

from ..backends.base import conninfo_params, shown_dsn
from ..errors import FilesUnavailableError
from ..node import Node
from .report import Report, error_text
from .servers import files_where, read_or_none, rows, scalar


def parse_conninfo(text: str) -> dict[str, str]:
    return conninfo_params(text)


def passwords(conninfo: str) -> set[str]:
    """The password a conninfo carries (also when it does not parse), for masking."""
    try:
        password = parse_conninfo(conninfo).get("password")
    except psycopg.Error:
        match = re.search(r"password\s*=\s*'?([^'\s]+)", conninfo)
        password = match.group(1) if match else None
    return {password} if password else set()


_CONF_ASSIGNMENT = re.compile(
    r"^\s*primary_conninfo\s*(?:=\s*)?(?P<value>'(?:[^'\\]|''|\\.)*'|[^\s#']+)", re.IGNORECASE
)
_CONF_ESCAPES = {"b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}


def _conf_value(raw: str) -> str:
    if not raw.startswith("'"):
        return raw
    inner = raw[1:-1].replace("''", "'")
    return re.sub(r"\\(.)", lambda m: _CONF_ESCAPES.get(m.group(1), m.group(1)), inner)


@dataclass
class Assignment:
    """One ``primary_conninfo = ...`` line of a configuration file."""

    file: str
    line: int
    value: str
    origin: str  # pg_file_settings or the file itself
    applied: bool | None = None
    error: str | None = None
    wins: bool = False


@dataclass
class Conninfo:
    """Everything known about a standby's primary_conninfo."""

    effective: str | None = None
    source: str | None = None  # pg_settings.source
    sourcefile: str | None = None
    sourceline: int | None = None
    unreadable: str | None = None
    assignments: list[Assignment] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


_PG_SETTINGS_SQL = (
    "SELECT setting, source, sourcefile, sourceline FROM pg_settings "
    "WHERE name = 'primary_conninfo'"
)
_PG_FILE_SETTINGS_SQL = (
    "SELECT sourcefile, sourceline, setting, applied, error FROM pg_file_settings "
    "WHERE name = 'primary_conninfo' ORDER BY seqno"
)
_CONF_FILES = ("postgresql.conf", "postgresql.auto.conf")  # read in this order; last wins


def read_conninfo(node: Node, conn: Any) -> Conninfo:
    info = Conninfo()
    if conn is not None:
        try:
            row = conn.execute(_PG_SETTINGS_SQL).fetchone()
            if row is None:
                raise psycopg.errors.InsufficientPrivilege("primary_conninfo not in pg_settings")
            info.effective, info.source, info.sourcefile, info.sourceline = row
        except psycopg.Error:
            try:
                info.effective = scalar(conn, "SHOW primary_conninfo")
                info.source = "SHOW"
            except psycopg.Error as exc:
                info.unreadable = (
                    f"{error_text(exc)}: connect as a superuser or a member of "
                    "pg_read_all_settings to read the effective value"
                )
        try:
            for r in rows(conn, _PG_FILE_SETTINGS_SQL):
                info.assignments.append(
                    Assignment(
                        r["sourcefile"],
                        r["sourceline"],
                        r["setting"] or "",
                        "pg_file_settings",
                        r["applied"],
                        r["error"],
                    )
                )
        except psycopg.Error as exc:
            info.notes.append(f"pg_file_settings not readable ({error_text(exc)})")
    listed = {(os.path.basename(a.file), a.line) for a in info.assignments}
    for name in _CONF_FILES:
        try:
            text = read_or_none(node, name)
        except FilesUnavailableError as exc:
            info.notes.append(str(exc))
            break
        if text is None:
            info.notes.append(f"{name}: not in the data directory {files_where(node)}")
            continue
        for number, line in enumerate(text.splitlines(), start=1):
            match = _CONF_ASSIGNMENT.match(line)
            if match and (name, number) not in listed:
                setting = _conf_value(match.group("value"))
                info.assignments.append(
                    Assignment(node.file_location(name), number, setting, "file")
                )
    mark_winner(info)
    return info


def mark_winner(info: Conninfo) -> None:
    def same(a: Assignment, path: str) -> bool:
        return a.file == path or os.path.basename(a.file) == os.path.basename(path)

    if info.sourcefile and info.sourceline is not None:
        for a in info.assignments:
            if same(a, info.sourcefile) and a.line == info.sourceline:
                a.wins = True
                return
    for a in info.assignments:
        if a.applied:
            a.wins = True
            return
    order = {name: i for i, name in enumerate(_CONF_FILES)}
    ranked = [a for a in info.assignments if os.path.basename(a.file) in order]
    if ranked and info.source in (None, "configuration file", "SHOW"):
        best = max(ranked, key=lambda a: (order[os.path.basename(a.file)], a.line))
        best.wins = True
        info.notes.append(
            "winner inferred from the files (postgresql.auto.conf is read after "
            "postgresql.conf; within a file the last line wins)"
        )


def describe_sources(info: Conninfo, report: Report) -> None:
    if info.effective is not None:
        where = (
            f"{info.sourcefile}:{info.sourceline}"
            if info.sourcefile
            else (info.source or "unknown source")
        )
        report.see(f"effective primary_conninfo ({where}): {shown(info.effective)}")
    elif info.unreadable:
        report.see(f"effective primary_conninfo unreadable: {info.unreadable}")
    if info.assignments:
        n = len(info.assignments)
        report.see(
            f"primary_conninfo is set in {n} place{'s' * (n != 1)} (the last one read wins):"
        )
        for a in info.assignments:
            mark = "  <- wins" if a.wins else ""
            error = f"  (error: {a.error})" if a.error else ""
            report.see(f"  {a.file}:{a.line}  {shown(a.value)}{mark}{error}")
    else:
        report.see("primary_conninfo is set in no configuration file that could be read")
    winner = next((a for a in info.assignments if a.wins), None)
    if (
        winner is not None
        and info.effective is not None
        and not same_conninfo(winner.value, info.effective)
    ):
        report.see(
            f"note: {winner.file}:{winner.line} differs from the effective value: the file "
            "changed after the last reload (SELECT pg_reload_conf() applies it)"
        )
    for note in info.notes:
        report.see(f"note: {note}")


def shown(conninfo: str) -> str:
    if not conninfo.strip():
        return "'' (empty)"
    try:
        parse_conninfo(conninfo)
    except psycopg.Error:
        return "(not a valid conninfo)"
    return shown_dsn(conninfo)


def same_conninfo(a: str, b: str) -> bool:
    try:
        return parse_conninfo(a) == parse_conninfo(b)
    except psycopg.Error:
        return a == b


def winner_label(info: Conninfo) -> str:
    for a in info.assignments:
        if a.wins:
            return f"{a.file}:{a.line}"
    if info.sourcefile:
        return f"{info.sourcefile}:{info.sourceline}"
    return info.source or "an unknown source"
