"""Copies made ahead: where a snapshot's restore waits on container starts (Docker, ~1 s
of a daemon's work), the next test's copy of the same shape is restored in the
background while the current test runs, so that a function-scoped fixture hands out a
pair that is already streaming. Local restores (~0.2 s of copying, CPU the test needs)
are made when asked.

A spare is a copy nobody touched; one made for other settings (keep, timeout) is closed
and another made. One left at the end of the session is closed with it; one a killed
process leaves is the reaper's, as every cluster is.
"""

from __future__ import annotations

import logging
from concurrent.futures import Future, ThreadPoolExecutor

import pytest

from .cluster import Cluster
from .config import Settings
from .snapshots import ClusterSnapshot

log = logging.getLogger(__name__)


class Spares:
    """Per session (per xdist worker): at most one copy made ahead per shape."""

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pgstandby-spare")
        self._ahead: dict[Settings, tuple[Settings, Future[Cluster]]] = {}

    def take(
        self, key: Settings, snapshot: ClusterSnapshot, settings: Settings, ahead: bool = True
    ) -> Cluster:
        """A copy of ``snapshot`` for ``settings``: the one made ahead when there is one
        for the same settings, else one made now; then, with ``ahead``, the next one is
        begun."""
        cluster = self._spare(key, settings)
        if cluster is None:
            cluster = snapshot.restore(settings)
        if ahead:
            self.begin(key, snapshot, settings)
        return cluster

    def begin(self, key: Settings, snapshot: ClusterSnapshot, settings: Settings) -> None:
        """Start making the next copy of ``snapshot`` (where its restores are slow)."""
        if snapshot.restores_slowly and key not in self._ahead:
            self._ahead[key] = (settings, self._pool.submit(snapshot.restore, settings))

    def _spare(self, key: Settings, settings: Settings) -> Cluster | None:
        ahead = self._ahead.pop(key, None)
        if ahead is None:
            return None
        made_for, future = ahead
        try:
            spare = future.result()
        except Exception as exc:  # restore() removed what it made; make one now instead
            log.warning("a copy made ahead failed, another is made now: %s", exc)
            return None
        if made_for != settings:
            spare.close()
            return None
        return spare

    def drop(self, key: Settings) -> None:
        """Close the copy made ahead for ``key`` (waiting for it if under way): before
        its snapshot goes."""
        ahead = self._ahead.pop(key, None)
        if ahead is None:
            return
        try:
            ahead[1].result().close()
        except Exception as exc:
            log.warning("a copy made ahead failed: %s", exc)

    def close(self) -> None:
        for key in list(self._ahead):
            self.drop(key)
        self._pool.shutdown()


SPARES_KEY = pytest.StashKey[Spares]()
LAST_USE_KEY = pytest.StashKey[tuple[dict[str, int], dict[str, int]]]()


def asked_again(request: pytest.FixtureRequest) -> bool:
    """Whether a test after this one, in the session's order, uses the same fixture (a
    copy made ahead for none would cost a restore and a wait at the session's end).
    Under xdist a worker knows every collected test, not the ones it will be sent: it
    may then make one copy too many."""
    session = request.session
    if LAST_USE_KEY not in session.stash:
        order = {item.nodeid: i for i, item in enumerate(session.items)}
        last: dict[str, int] = {}
        for i, item in enumerate(session.items):
            for name in getattr(item, "fixturenames", ()):
                last[name] = i
        session.stash[LAST_USE_KEY] = (order, last)
    order, last = session.stash[LAST_USE_KEY]
    here = order.get(request.node.nodeid)
    if here is None or request.fixturename is None:
        return True
    return here < last.get(request.fixturename, -1)


def spares(config: pytest.Config) -> Spares:
    """This session's spares, closed at its end."""
    if SPARES_KEY not in config.stash:
        made = config.stash[SPARES_KEY] = Spares()
        config.add_cleanup(made.close)
    return config.stash[SPARES_KEY]
