"""What each section of the documented procedure did, checked live (``pgstandby lab
walkthrough``). A proof looks at a ``Node`` (its files, its SQL, its log) or at what a
command answered, and passes or fails with what it saw; passwords are masked.

>>> prove_standby_signal(standby).passed                                # doctest: +SKIP
True
"""

from __future__ import annotations

import os
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import psycopg
import psycopg.errors

from .._text import human_bytes, mask_secrets
from .._wait import NotYet, poll_until
from ..assertions.conninfo import read_conninfo, shown
from ..errors import PgStandbyError
from ..node import Node

#: The two lines section 6 appends to pg_hba.conf (the seed's text, blanks folded; the
#: seed's method is trust, the script takes another from its environment).
APPENDED_HBA = (
    re.compile(r"host all all 0\.0\.0\.0/0 \S+"),
    re.compile(r"host replication all 0\.0\.0\.0/0 \S+"),
)
#: PostgreSQL's own word on the line a refused connection matched (15: pg_hba.conf; 16+:
#: the file's name).
_MATCHED = re.compile(r'Connection matched (?:pg_hba\.conf|file "[^"]*") line (\d+): "(.*)"')
_TABLE = "pgstandby_walkthrough"


@dataclass
class Proof:
    """One check: what it claims, whether it held, and what it saw."""

    passed: bool
    claim: str
    seen: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        head = f"{'PASS' if self.passed else 'FAIL'}  {self.claim}"
        return [head, *(f"      {mask_secrets(line)}" for line in self.seen)]


def attempt(claim: str, check: Callable[[], Proof]) -> Proof:
    """``check()``, or a failed proof saying what went wrong instead (a server that does
    not answer, a file that cannot be read): a proof never ends the walkthrough."""
    try:
        return check()
    except (psycopg.Error, PgStandbyError, OSError, ValueError) as exc:
        text = str(exc).strip() or type(exc).__name__
        seen = [f"{type(exc).__name__}: {line}" for line in text.splitlines()]
        return Proof(False, f"{claim} (the check could not complete)", seen)


# listings ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    """A name at the top of a data directory, its size in bytes and its files (recursive)."""

    name: str
    is_dir: bool
    size: int
    files: int

    def __str__(self) -> str:
        if self.is_dir:
            files = f"{self.files} file{'s' * (self.files != 1)}"
            return f"{self.name}/ {human_bytes(self.size)} ({files})"
        return f"{self.name} {human_bytes(self.size)}"


#: bash, after the script's header: every name at the top of $DATA_DIR, dotfiles included
#: (find, unlike the shell's *), with du's apparent size and a count of files.
LISTING = r"""cd "$DATA_DIR"
find . -mindepth 1 -maxdepth 1 -printf '%y %P\n' | while read -r kind name; do
    printf '%s\t%s\t%s\t%s\n' "$kind" "$(du -sb -- "$name" | cut -f1)" \
        "$(find "$name" -type f | wc -l)" "$name"
done"""


def parse_listing(output: str) -> list[Entry]:
    entries = []
    for line in output.splitlines():
        parts = line.split("\t", 3)
        if len(parts) == 4 and parts[1].isdigit() and parts[2].isdigit():
            entries.append(Entry(parts[3], parts[0] == "d", int(parts[1]), int(parts[2])))
    return sorted(entries, key=lambda e: e.name)


def names(entries: list[Entry]) -> str:
    return ", ".join(e.name + ("/" if e.is_dir else "") for e in entries) or "(nothing)"


# section 1 -----------------------------------------------------------------------------


def prove_primary_answers(command: str, status: int | None, answer: str) -> Proof:
    """Section 1: pg_isready, run again as the script runs it, says the primary accepts."""
    seen = [f"`{command}` answered: {answer.strip() or '(nothing)'} (exit {status})"]
    ok = status == 0 and "accepting connections" in answer
    return Proof(ok, "the primary accepts connections (pg_isready exits 0)", seen)


# section 2 -----------------------------------------------------------------------------


def prove_emptied(before: list[Entry], after: list[Entry], dotfile: str) -> Proof:
    """Section 2: ``rm -rf "$DATA_DIR"/*`` removed every name ``*`` matches; the dotfile,
    which ``*`` does not match, is still there."""
    left = [e for e in after if not e.name.startswith(".")]
    seen = [f"before: {names(before)}", f"after:  {names(after)}"]
    survived = any(e.name == dotfile for e in after)
    if survived:
        seen.append(f"{dotfile} survived: the shell's * does not match names starting with '.'")
    else:
        seen.append(f"{dotfile} is gone (it was in the directory before the section)")
    return Proof(
        not left and survived,
        "rm -rf $DATA_DIR/* removed everything but dotfiles",
        seen,
    )


# section 3 -----------------------------------------------------------------------------


def prove_recovery_files(standby: Node) -> Proof:
    """Section 3: ``pg_basebackup -R`` wrote standby.signal and primary_conninfo into
    postgresql.auto.conf."""
    claim = "pg_basebackup -R wrote standby.signal and primary_conninfo in postgresql.auto.conf"
    signal = standby.file_exists("standby.signal")
    auto = (
        standby.read_file("postgresql.auto.conf")
        if standby.file_exists("postgresql.auto.conf")
        else None
    )
    seen = [
        f"standby.signal: {'present' if signal else 'missing'} at "
        f"{standby.file_location('standby.signal')}"
    ]
    lines = [line for line in (auto or "").splitlines() if line.strip()]
    if auto is None:
        seen.append("postgresql.auto.conf: missing")
    else:
        seen.append("postgresql.auto.conf:")
        seen += [f"  {n}: {line}" for n, line in enumerate(lines, start=1)]
    has_conninfo = any(re.match(r"\s*primary_conninfo\s*=", line) for line in lines)
    return Proof(signal and has_conninfo, claim, seen)


def prove_copied(entries: list[Entry]) -> Proof:
    """Section 3: the primary's files are in the data directory (PG_VERSION, global/)."""
    files = sum(e.files for e in entries)
    size = sum(e.size for e in entries)
    listed = [str(e) for e in entries]
    seen = [f"{files} files, {human_bytes(size)} in {len(entries)} entries:"]
    seen += ["  " + ", ".join(listed[i : i + 4]) for i in range(0, len(listed), 4)]
    have = {e.name for e in entries}
    ok = {"PG_VERSION", "global", "base", "pg_wal"} <= have and files > 0
    return Proof(
        ok, "the primary's data directory was copied (PG_VERSION, base/, global/, pg_wal/)", seen
    )


# section 4 -----------------------------------------------------------------------------


def _assignment_lines(standby: Node, conn: Any) -> list[str]:
    info = read_conninfo(standby, conn)
    return [
        f"{os.path.basename(a.file)}:{a.line}  primary_conninfo = {shown(a.value)}"
        + ("" if a.applied is None else f"  (pg_file_settings.applied = {a.applied})")
        for a in info.assignments
    ]


def prove_appended_conninfo(standby: Node) -> Proof:
    """Section 4 (its file): the block is the end of postgresql.conf. Which of the two
    primary_conninfo lines PostgreSQL uses shows only in a running server (see
    ``prove_conninfo_source``, after section 7)."""
    claim = "postgresql.conf ends with the appended '# Standby configuration' block"
    text = standby.read_file("postgresql.conf").rstrip("\n").splitlines()
    numbered = [(n, line) for n, line in enumerate(text, start=1) if line.strip()]
    tail = numbered[-2:]
    ok = (
        len(tail) == 2
        and tail[0][1].strip() == "# Standby configuration"
        and re.match(r"primary_conninfo\s*=", tail[1][1]) is not None
    )
    seen = [f"postgresql.conf:{n}: {line}" for n, line in tail]
    seen += [
        "every line that sets primary_conninfo now:",
        *("  " + line for line in _assignment_lines(standby, None)),
    ]
    seen.append(
        "which one PostgreSQL uses: proved after section 7 (pg_settings.sourcefile "
        "needs the running server)"
    )
    return Proof(ok, claim, seen)


def prove_conninfo_source(standby: Node) -> Proof:
    """Section 4, on the running standby: pg_settings says primary_conninfo comes from
    postgresql.auto.conf (read after postgresql.conf, so the appended line is overridden)."""
    claim = "PostgreSQL uses primary_conninfo from postgresql.auto.conf, not section 4's line"
    with standby.connect() as conn:
        row = conn.execute(
            "SELECT setting, sourcefile, sourceline FROM pg_settings "
            "WHERE name = 'primary_conninfo'"
        ).fetchone()
        if row is None:
            return Proof(False, claim, ["pg_settings has no row for primary_conninfo"])
        seen = [f"pg_settings: sourcefile {row[1]}, line {row[2]}: {shown(row[0] or '')}"]
        seen += _assignment_lines(standby, conn)
    ok = os.path.basename(str(row[1] or "")) == "postgresql.auto.conf"
    if ok:
        seen.append("postgresql.auto.conf is read after postgresql.conf: its line wins")
    return Proof(ok, claim, seen)


# section 5 -----------------------------------------------------------------------------


def prove_standby_signal(standby: Node) -> Proof:
    """Section 5: standby.signal exists (its presence is the signal; it may be empty)."""
    where = standby.file_location("standby.signal")
    if not standby.file_exists("standby.signal"):
        return Proof(False, "standby.signal exists", [f"not found: {where}"])
    size = len(standby.read_file("standby.signal"))
    seen = [
        f"{where}: present, {size} bytes (pg_basebackup -R made it in section 3; touch keeps it)"
    ]
    return Proof(True, "standby.signal exists", seen)


# section 6 -----------------------------------------------------------------------------


def hba_rules(text: str) -> list[tuple[int, str]]:
    """(line number, rule with blanks folded) for each rule line of a pg_hba.conf."""
    rules = []
    for number, line in enumerate(text.splitlines(), start=1):
        rule = " ".join(line.split("#", 1)[0].split())
        if rule:
            rules.append((number, rule))
    return rules


def appended_hba(rules: list[tuple[int, str]]) -> list[int]:
    """The line numbers of section 6's two lines, if they are the file's last two rules."""
    last = [rule for _, rule in rules[-2:]]
    if len(last) == 2 and all(p.fullmatch(r) for p, r in zip(APPENDED_HBA, last, strict=True)):
        return [number for number, _ in rules[-2:]]
    return []


def prove_hba_appended(standby: Node) -> Proof:
    """Section 6 (its file): its two lines are appended below the cloned rules."""
    claim = "section 6's two lines are appended below the rules cloned from the primary"
    rules = hba_rules(standby.read_file("pg_hba.conf"))
    appended = appended_hba(rules)
    cloned = rules[:-2] if appended else rules
    seen = [f"pg_hba.conf:{n}: {rule}" for n, rule in rules[-2:]]
    if cloned:
        seen.append(
            f"above them, {len(cloned)} rules cloned from the primary (lines "
            f"{cloned[0][0]}-{cloned[-1][0]}), read first"
        )
    seen.append(
        "which line a connection matches: proved after section 7 "
        "(pg_hba_file_rules and the server's log need the running server)"
    )
    return Proof(bool(appended) and bool(cloned), claim, seen)


#: The first rule of pg_hba_file_rules that this very connection matches, as PostgreSQL
#: matches a host connection: type, database, user, then address/netmask (hostnames,
#: samehost/samenet and +groups are not evaluated: not in a cloned file of ours).
_FIRST_MATCH = """
WITH me AS (
  SELECT inet_client_addr() AS addr, current_user::text AS usr, current_database()::text AS db,
         coalesce((SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()), false) AS ssl)
SELECT r.line_number, concat_ws(' ', r.type, array_to_string(r.database, ','),
         array_to_string(r.user_name, ','), r.address, r.netmask, r.auth_method),
       host(me.addr)
FROM pg_hba_file_rules r, me
WHERE r.error IS NULL
  AND r.type IN ('host', CASE WHEN me.ssl THEN 'hostssl' ELSE 'hostnossl' END)
  AND r.database && ARRAY['all', me.db] AND r.user_name && ARRAY['all', me.usr]
  AND CASE WHEN r.address = 'all' THEN true
           WHEN r.address ~ '^[0-9A-Fa-f.:]+$' AND r.netmask IS NOT NULL THEN
             CASE WHEN family(r.address::inet) = family(me.addr)
                  THEN (me.addr & r.netmask::inet) = (r.address::inet & r.netmask::inet)
                  ELSE false END
           ELSE false END
ORDER BY r.line_number LIMIT 1
"""


def prove_hba_match(standby: Node, timeout: float = 10.0) -> Proof:
    """Section 6, on the running standby: the first pg_hba.conf line a connection matches
    is a cloned one, not a line section 6 appended. Two witnesses: pg_hba_file_rules (the
    first rule this connection fits), and PostgreSQL itself, which names the matched line
    in its log when a connection with a wrong password is refused."""
    claim = "a connection to the standby matches a cloned pg_hba.conf line first"
    rules = hba_rules(standby.read_file("pg_hba.conf"))
    appended = appended_hba(rules)
    row = standby.execute(_FIRST_MATCH)
    if not row:
        return Proof(False, claim, ["pg_hba_file_rules: no rule matches this connection"])
    line, rule, addr = row[0]
    seen = [
        f"pg_hba_file_rules: this connection (host, user and database of the DSN, from "
        f"{addr}) fits line {line} first: {rule}"
    ]
    logged_before = len(standby.log())
    wrong = "walkthrough-wrong-" + secrets.token_hex(4)
    try:
        standby.connect(password=wrong, passfile=os.devnull).close()
        seen.append(
            "a wrong password was accepted: a trust line decides this connection "
            "(PostgreSQL names no line then)"
        )
        return Proof(False, claim, seen)
    except psycopg.OperationalError as exc:
        seen.append(f"with a wrong password: refused ({str(exc).strip().splitlines()[-1]})")

    def matched() -> tuple[str, str]:
        found = _MATCHED.search(standby.log()[logged_before:])
        if found is None:
            raise NotYet("no 'Connection matched' line in the standby's log yet")
        return found.group(1), found.group(2)

    said, said_rule = poll_until(matched, what="the refusal in the standby's log", timeout=timeout)
    seen.append(f"the standby's log: Connection matched pg_hba.conf line {said}: {said_rule}")
    if appended:
        seen.append(
            f"section 6's lines ({appended[0]}, {appended[1]}) come after it: "
            "never reached by this connection"
        )
    ok = bool(appended) and int(said) == int(line) and int(said) < appended[0]
    return Proof(ok, claim, seen)


# section 7 -----------------------------------------------------------------------------


def prove_in_recovery(standby: Node) -> Proof:
    value = standby.query_value("SELECT pg_is_in_recovery()")
    return Proof(
        value is True,
        "the standby runs in recovery (standby mode)",
        [f"SELECT pg_is_in_recovery() -> {value}"],
    )


def prove_streaming(standby: Node, timeout: float) -> Proof:
    claim = "its WAL receiver streams from the primary (pg_stat_wal_receiver)"
    standby.poll_query_until("SELECT status FROM pg_stat_wal_receiver", "streaming", timeout)
    row = standby.execute(
        "SELECT status, sender_host, sender_port, pg_last_wal_receive_lsn()::text "
        "FROM pg_stat_wal_receiver"
    )
    status, host, port, lsn = row[0]
    return Proof(
        status == "streaming", claim, [f"status {status}, from {host}:{port}, received up to {lsn}"]
    )


def prove_replayed(primary: Node, standby: Node, timeout: float) -> Proof:
    claim = "a row written on the primary is replayed on the standby"
    token = secrets.token_hex(6)
    primary.execute(f"CREATE TABLE IF NOT EXISTS {_TABLE} (note text)")
    primary.execute(f"INSERT INTO {_TABLE} VALUES (%s)", [token])
    started = time.monotonic()
    lsn = primary.wait_for_catchup(standby, timeout=timeout)
    took = time.monotonic() - started
    found = standby.query_value(f"SELECT count(*) FROM {_TABLE} WHERE note = %s", [token])
    seen = [
        f"INSERT INTO {_TABLE} VALUES ('{token}') on the primary, WAL up to {lsn}",
        f"the standby replayed it in {took * 1000:.0f} ms; SELECT there finds {found} row(s)",
    ]
    return Proof(found == 1, claim, seen)


def prove_write_refused(standby: Node) -> Proof:
    claim = "a write on the standby is refused"
    try:
        standby.execute(f"INSERT INTO {_TABLE} VALUES ('written on the standby')")
    except psycopg.errors.ReadOnlySqlTransaction as exc:
        error = str(exc).strip().splitlines()[0]
        return Proof(
            True, claim, [f"INSERT on the standby: ERROR: {error} (SQLSTATE {exc.sqlstate})"]
        )
    return Proof(False, claim, ["INSERT on the standby succeeded: it is not read-only"])
