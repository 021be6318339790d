"""A documented-built cluster kept as files, and fresh copies of it started in ~0.2 s:
the function-scoped factory clusters' default on the local backend (``fresh="rebuild"``
runs the script for every test instead).

>>> from pytest_pgstandby import start_cluster, take_snapshot
>>> with start_cluster(backend="local") as built, take_snapshot(built) as snap:  # doctest: +SKIP
...     with snap.restore() as fresh:        # a new pair: new ports, same files
...         fresh.standby.setup_output()     # the script's run, as it was for `built`
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .backends.local import LocalBackend
from .backends.snapshot import LocalSnapshot, SnapshotNode, restore, take
from .cluster import Cluster
from .config import Settings
from .errors import UnsupportedError


@dataclass
class ClusterSnapshot:
    """The files of a cluster and its shape (who streams from whom, slots, synchronous
    standbys). A context manager; ``close()`` removes the files."""

    settings: Settings
    saved: LocalSnapshot
    upstreams: dict[str, str]  # standby -> upstream node name
    slots: list[tuple[str, str]]  # (upstream name, slot name)
    synchronous: dict[str, list[str]] = field(default_factory=dict)

    def restore(self, settings: Settings | None = None) -> Cluster:
        """A new cluster from the files, every standby streaming; the caller closes it.
        ``settings`` may differ from the snapshot's in what does not shape the cluster
        (keep, timeout)."""
        settings = settings or self.settings
        backend = LocalBackend(settings.pg_bin, settings.timeout, major=settings.version)
        cluster = Cluster(settings, backend, f"restored from the snapshot {self.saved.root}")
        try:
            handles = restore(backend, self.saved)  # in the snapshot's order: the primary first
            cluster.adopt(list(handles), self.upstreams, self.slots, self.synchronous)
            _wait_streaming(cluster)
        except BaseException:
            cluster.close(keep=settings.keeps(failed=True))
            raise
        return cluster

    def close(self) -> None:
        self.saved.close()

    def describe(self) -> dict[str, Any]:
        """What ``described`` needs to restore it in another process (JSON-ready; the
        passwords included: keep it as private as the files)."""
        saved = asdict(self.saved)
        saved["root"] = str(self.saved.root)
        shape = {"upstreams": self.upstreams, "slots": self.slots}
        return {"saved": saved, **shape, "synchronous": self.synchronous}

    @classmethod
    def described(cls, settings: Settings, text: dict[str, Any]) -> ClusterSnapshot:
        saved = dict(text["saved"])
        nodes = tuple(SnapshotNode(**n) for n in saved["nodes"])
        superuser, replication = saved["passwords"]
        local = LocalSnapshot(
            Path(saved["root"]), nodes, saved["binaries"], (superuser, replication)
        )
        slots = [(upstream, slot) for upstream, slot in text["slots"]]
        return cls(settings, local, text["upstreams"], slots, text["synchronous"])

    def __enter__(self) -> ClusterSnapshot:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def shape_key(settings: Settings) -> Settings:
    """The settings that shape a cluster (a snapshot's key): not keep, timeout, report;
    profile auto as a built cluster's settings say it (a snapshot is local: documented)."""
    profile = "documented" if settings.profile == "auto" else settings.profile
    return settings.with_overrides(keep="never", timeout=60.0, report="short", profile=profile)


def copyable(settings: Settings) -> bool:
    """Whether a copy of a snapshot may stand for a cluster of these settings: not asked
    to be rebuilt, not external, and nothing a copy cannot take along (a hardened
    standby's passfile, the archive an archive_command names)."""
    return not (
        settings.fresh == "rebuild" or settings.external or settings.hardened or settings.archiving
    )


def can_snapshot(cluster: Cluster) -> bool:
    """Whether ``take_snapshot`` works on this cluster's backend (the local one)."""
    return isinstance(cluster.backend, LocalBackend)


def take_snapshot(cluster: Cluster, into: Path | None = None) -> ClusterSnapshot:
    """Stop the cluster's servers cleanly, copy their files, start them again (the cluster
    stays usable). Local clusters only. ``into``: the new directory to keep them in."""
    backend = cluster.backend
    if not isinstance(backend, LocalBackend):  # can_snapshot, spelt out for mypy
        raise UnsupportedError(
            f"a snapshot copies data directories on this machine; a {backend.name} cluster's "
            "live elsewhere. Fix: backend='local', or fresh='rebuild' for function-scoped "
            "clusters (each test's pair made by the script)."
        )
    upstreams, slots, synchronous = cluster.shape()
    for node in cluster.nodes:
        node.close_connections()  # the clean stop ends them: none may be kept past it
    saved = take(backend, upstreams, into)
    _wait_streaming(cluster)
    return ClusterSnapshot(cluster.settings, saved, upstreams, slots, synchronous)


def _wait_streaming(cluster: Cluster) -> None:
    for standby in cluster.standbys:
        standby.poll_query_until("SELECT status FROM pg_stat_wal_receiver", "streaming")
