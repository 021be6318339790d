"""Failures a standby's log states outright, each with its fix: a wait that sees one
stops and says so, instead of running into its timeout.

>>> watch = LogWatch(lambda: log_text)                               # doctest: +SKIP
>>> watch()   # None, or "the standby cannot stream: ..." once such a line is logged
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable

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
        re.compile(r"invalidating (?:obsolete )?replication slot \"[^\"]+\""),
        "the standby's slot was invalidated: it fell further behind than its upstream's "
        "max_slot_wal_keep_size allows, and the WAL it needs is gone",
        "rebuild the standby (standby.reclone()) and drop or recreate the slot; next time "
        "a larger max_slot_wal_keep_size (or -1, no limit) on the upstream",
    ),
    (
        re.compile(r'password authentication failed for user "[^"]+"'),
        "the standby's replication user cannot log in to its upstream",
        "check the user and password in its primary_conninfo (assert_primary_conninfo) "
        "and the upstream's pg_hba.conf",
    ),
]


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
        fresh = text[self._seen :] if len(text) >= self._seen else text
        for pattern, meaning, fix in KNOWN_FAILURES:
            match = pattern.search(fresh)
            if match:
                return f'{meaning} ("{match.group(0)}" in its log). Fix: {fix}.'
        return None
