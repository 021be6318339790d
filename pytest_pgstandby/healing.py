"""A cluster shared by several tests (the session's ``pgstandby_cluster``, a module-scoped
factory's) put back after a test that changed it, so that one destructive test does not
break the ones after it.

After each test that used it: the cluster's journal (every state-changing verb the
harness ran on it, ``node_core.journaled``) and a role check (one ``pg_is_in_recovery()``
per node, which also catches a ``pg_promote()`` sent as SQL). Untouched: nothing to do.
Only paused, partitioned, stopped, killed or replay-paused nodes: healed (resume, heal,
start, resume_replay) and checked to stream again. Anything else (a promote, a follow, a
rewind, settings, slots, added or removed nodes), or a heal that does not bring the pair
back: made again in place, under the same object the tests hold: a copy of a snapshot of
its shape where the caller has one (factories.remake), else by the scripts.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import psycopg

from .cluster import Cluster, build_cluster
from .config import Settings
from .errors import PgStandbyError

#: makes a cluster of the settings and says how ("rebuilt by the scripts")
Remake = Callable[[Settings], tuple[Cluster, str]]

#: verbs whose effect a heal undoes; any other means a rebuild
HEALABLE = frozenset(
    {
        "pause", "resume", "stop", "start", "restart", "kill", "reclone", "partition", "heal",
        "pause_replay", "resume_replay", "kill_process",
    }
)  # fmt: skip
#: how long a healed standby may take to stream and catch up again
HEAL_TIMEOUT = 20.0


@dataclass
class Restored:
    """What a restore found and did, for the next test's report."""

    changes: list[str]  # "promote standby1", or the role check's finding
    action: str  # "healed (resume standby1)" / "rebuilt"
    seconds: float

    def line(self, test: str, fixture: str) -> str:
        what = ", ".join(self.changes)
        return (
            f"{fixture} was changed by {test} ({what}); {self.action} in "
            f"{self.seconds:.1f} s before this test"
        )


def _build(settings: Settings) -> tuple[Cluster, str]:
    return build_cluster(settings), "rebuilt by the scripts"


def restore(cluster: Cluster, keep: bool = False, remake: Remake = _build) -> Restored | None:
    """Put ``cluster`` back as it was built if a test changed it (None: it did not).
    ``keep``: a rebuild leaves the changed servers running for inspection (keep=on-failure
    after a failed test), as teardown would. ``remake``: how a new one is made (from a
    snapshot of its shape where the caller has one), and the words for it."""
    started = time.monotonic()
    noted = list(cluster.journal)
    cluster.journal.clear()
    wrong = [] if noted else roles_wrong(cluster)
    if not noted and not wrong:
        return None
    changes = [f"{verb} {node}" if node != "cluster" else verb for node, verb in noted] + wrong
    if noted and all(verb in HEALABLE for _, verb in noted):
        done = _heal(cluster, noted)
        if done == "":  # undone by the test itself (pause, then resume): said nowhere
            cluster.journal.clear()
            return None
        if done is not None:
            cluster.journal.clear()
            return Restored(changes, f"healed ({done})", time.monotonic() - started)
    how = rebuild(cluster, keep, remake)
    return Restored(changes, how, time.monotonic() - started)


def roles_wrong(cluster: Cluster) -> list[str]:
    """What the servers say against the roles they were built with: ``standby1 is a
    primary``, ``primary does not answer``."""
    wrong = []
    for node, standby in [(cluster.primary, False), *((s, True) for s in cluster.standbys)]:
        try:
            with psycopg.connect(node.dsn, connect_timeout=3) as conn:
                row = conn.execute("SELECT pg_is_in_recovery()").fetchone()
        except psycopg.Error:
            wrong.append(f"{node.name} does not answer")
            continue
        if row is not None and bool(row[0]) != standby:
            wrong.append(f"{node.name} is a {'primary' if row[0] is False else 'standby'}")
    return wrong


def _last(noted: list[tuple[str, str]], name: str, verbs: tuple[str, ...]) -> str | None:
    return next((v for n, v in reversed(noted) if n == name and v in verbs), None)


def _heal(cluster: Cluster, noted: list[tuple[str, str]]) -> str | None:
    """Undo pauses, partitions, stops and replay pauses; None when the pair does not
    stream again (the caller rebuilds)."""
    done: list[str] = []

    def undo(started: str, undone: str) -> None:
        for node in cluster.nodes:
            if _last(noted, node.name, (started, undone)) == started:
                getattr(node, undone)()
                done.append(f"{undone} {node.name}")

    try:
        undo("pause", "resume")
        undo("partition", "heal")
        for node in cluster.nodes:  # the primary first
            if not node.is_running():
                node.start()
                done.append(f"start {node.name}")
        undo("pause_replay", "resume_replay")
        if roles_wrong(cluster):
            return None
        for standby in cluster.standbys:
            upstream = cluster._upstreams.get(standby.name, cluster.primary)
            upstream.wait_for_catchup(standby, timeout=HEAL_TIMEOUT)
    except (PgStandbyError, psycopg.Error):
        return None
    return ", ".join(done)


def rebuild(cluster: Cluster, keep: bool = False, remake: Remake = _build) -> str:
    """Close ``cluster`` and make it again with its settings, in place: fixtures and
    tests keep the same object; its nodes are new. Says how it was made."""
    settings = cluster.settings
    cluster.close(keep=keep)
    fresh, how = remake(settings)
    fresh.journal.clear()
    vars(cluster).update(vars(fresh))
    return how
