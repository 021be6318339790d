"""Failures a standby's log states outright, each with its fix: a wait that sees one
stops and says so, instead of running into its timeout.

>>> watch = LogWatch(lambda: log_text)                               # doctest: +SKIP
>>> watch()   # None, or "the standby cannot stream: ..." once such a line is logged
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable

#: pg_basebackup's own error line in a standby's setup output (readiness, the doctor)
BASEBACKUP_ERROR = re.compile(r"^pg_basebackup: error: .*$", re.MULTILINE)
#: A replication login refused for its password or by pg_hba.conf (readiness, the doctor)
REPLICATION_REFUSED = re.compile(
    r"password authentication failed|no pg_hba\.conf entry for replication"
    r"|pg_hba\.conf rejects replication connection"
)
#: The pg_hba.conf refusal of a replication connection, as a line to quote (the doctor)
HBA_REFUSAL = re.compile(
    r"(?:pg_hba\.conf rejects|no pg_hba\.conf entry for) replication connection[^\n]*"
)

#: (a log line's pattern, what it means, the fix)
KNOWN_FAILURES: list[tuple[re.Pattern[str], str, str]] = [
    (
        re.compile(r"requested WAL segment \S+ has already been removed"),
        "the standby cannot stream: its upstream has already removed WAL it still needs",
        "give the standby a replication slot (add_standby(slot=True), or slots=True), or "
        "keep more WAL on the upstream (upstream.set_conf(wal_keep_size='1GB'); on PostgreSQL "
        "12, which predates wal_keep_size, wal_keep_segments=64) before it "
        "falls behind; this standby must now be rebuilt: standby.reclone()",
    ),
    (
        re.compile(r'replication slot "[^"]+" does not exist'),
        "the standby streams through a replication slot its upstream does not have (slots "
        "are not replicated: a promoted standby has none of its old primary's)",
        "create it on the upstream (upstream.create_slot(name)); follow() does so itself",
    ),
    (
        re.compile(r'can no longer (?:get changes from|access) replication slot "[^"]+"'),
        "the standby's replication slot on its upstream was invalidated (it fell further "
        "behind than max_slot_wal_keep_size allows)",
        "rebuild the standby (standby.reclone()); a larger max_slot_wal_keep_size on the "
        "upstream if it must survive falling that far behind",
    ),
    (
        re.compile(r"recovery ended before configured recovery target was reached"),
        "targeted recovery ran out of WAL before its recovery target: neither the backup "
        "nor the archive holds WAL up to it",
        "a target between the backup's end and the last archived segment (archiving=True; "
        "pg_stat_archiver.last_archived_wal on the primary), or switch and archive the "
        "segment first (primary.advance_wal(1))",
    ),
    (
        re.compile(r'password authentication failed for user "[^"]+"'),
        "the standby's replication user cannot log in to its upstream",
        "check the user and password in its primary_conninfo (assert_primary_conninfo) "
        "and the upstream's pg_hba.conf",
    ),
]


#: The failures that mean the standby cannot get the WAL it needs (the doctor's step).
WAL_FAILURES = KNOWN_FAILURES[:2]


class LogWatch:
    """Looks at what a log gained since the watch's first look, at most every
    ``interval`` seconds; returns the first known failure found, with the log line and
    the fix. The first look is taken only once a wait has lasted ``interval``, so a wait
    that ends at once reads no log (a Docker node's log is an API call). A failure the log
    states keeps being logged (the WAL receiver retries every few seconds), so it is
    still seen after that first look."""

    def __init__(self, read: Callable[[], str], interval: float = 0.5) -> None:
        self._read = read
        self._interval = interval
        self._seen: int | None = None
        self._next = time.monotonic() + interval

    def _text(self) -> str:
        try:
            return self._read()
        except OSError:
            return ""

    def __call__(self) -> str | None:
        if time.monotonic() < self._next:
            return None
        self._next = time.monotonic() + self._interval
        text = self._text()
        if self._seen is None:  # the first look: what was logged before is not ours
            self._seen = len(text)
            return None
        return explain(text[self._seen :] if len(text) >= self._seen else text)


def explain(logged: str) -> str | None:
    """The first known failure ``logged`` states: its meaning, the line, and the fix."""
    for pattern, meaning, fix in KNOWN_FAILURES:
        match = pattern.search(logged)
        if match:
            return f'{meaning} ("{match.group(0)}" in its log). Fix: {fix}.'
    return None
