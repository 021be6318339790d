"""A documented-built cluster kept as files, and fresh copies of it started in ~0.2 s
(local) or under a second (Docker: new containers in a network of their own): the
function-scoped factory clusters' default (``fresh="rebuild"`` runs the scripts for
every test instead).

>>> from pytest_pgstandby import start_cluster, take_snapshot
>>> with start_cluster(backend="local") as built, take_snapshot(built) as snap:  # doctest: +SKIP
...     with snap.restore() as fresh:        # a new pair: new ports, same files
...         fresh.standby.setup_output()     # the script's run, as it was for `built`
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .backends.local import LocalBackend
from .backends.snapshot import LocalSnapshot, SnapshotNode, restore, take
from .cluster import Cluster
from .config import Settings
from .errors import UnsupportedError

if TYPE_CHECKING:
    from .backends.docker_snapshot import DockerSnapshot


@dataclass
class ClusterSnapshot:
    """The files of a cluster and its shape (who streams from whom, slots, synchronous
    standbys). A context manager; ``close()`` removes the files."""

    settings: Settings
    saved: LocalSnapshot | DockerSnapshot
    upstreams: dict[str, str]  # standby -> upstream node name
    slots: list[tuple[str, str]]  # (upstream name, slot name)
    synchronous: dict[str, list[str]] = field(default_factory=dict)

    def restore(self, settings: Settings | None = None) -> Cluster:
        """A new cluster from the files, every standby streaming; the caller closes it.
        ``settings`` may differ from the snapshot's in what does not shape the cluster
        (keep, timeout)."""
        settings = settings or self.settings
        why = f"restored from the snapshot {self.saved.root}"
        backend: Any
        if isinstance(self.saved, LocalSnapshot):
            backend = LocalBackend(settings.pg_bin, settings.timeout, major=settings.version)
        else:
            from .backends.docker import DockerBackend

            backend = DockerBackend(
                settings.docker_image, settings.timeout, hardened=False, major=settings.version
            )
        cluster = Cluster(settings, backend, why)
        try:
            handles: list[Any]
            if isinstance(self.saved, LocalSnapshot):
                handles = list(restore(backend, self.saved))  # the primary first
            else:
                from .backends import docker_snapshot

                handles = list(docker_snapshot.restore(backend, self.saved))
            cluster.adopt(handles, self.upstreams, self.slots, self.synchronous)
            _wait_streaming(cluster)
        except BaseException:
            cluster.close(keep=settings.keeps(failed=True))
            raise
        return cluster

    @property
    def restores_slowly(self) -> bool:
        """Whether a restore mostly waits on someone else's work (a Docker daemon's
        container starts), which a copy made ahead can hide (``spares.py``)."""
        return not isinstance(self.saved, LocalSnapshot)

    def close(self) -> None:
        self.saved.close()

    def describe(self) -> dict[str, Any]:
        """What ``described`` needs to restore it in another process (JSON-ready; the
        passwords included: keep it as private as the files). Local snapshots only: a
        Docker snapshot lives in the memory of the process that took it."""
        if not isinstance(self.saved, LocalSnapshot):
            raise UnsupportedError("a Docker snapshot lives in the memory of its process")
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


def cannot_snapshot(cluster: Cluster, into: Path | None = None) -> str | None:
    """Why ``take_snapshot`` cannot copy this cluster (None: it can). A local cluster's
    files may go into a directory another process restores from (``into``); a Docker
    cluster's stay in this process's memory, and a hardened Docker standby's passfile
    lives outside its data directory."""
    backend = cluster.backend
    if isinstance(backend, LocalBackend):
        return None
    if backend.name != "docker":
        return f"a {backend.name} cluster's data directories are not the harness's to copy"
    if into is not None:
        return "a Docker snapshot lives in the memory of the process that took it"
    if getattr(backend, "hardened", False):
        return "a hardened Docker standby reads its password from a passfile outside its data"
    return None


def can_snapshot(cluster: Cluster, into: Path | None = None) -> bool:
    """Whether ``take_snapshot`` works on this cluster (local; Docker, documented)."""
    return cannot_snapshot(cluster, into) is None


def take_snapshot(cluster: Cluster, into: Path | None = None) -> ClusterSnapshot:
    """Stop the cluster's servers cleanly, copy their files, start them again (the cluster
    stays usable). Local clusters, and Docker ones of the documented profile. ``into``
    (local only): the new directory to keep them in."""
    why = cannot_snapshot(cluster, into)
    if why is not None:
        raise UnsupportedError(
            f"cannot snapshot this cluster: {why}. Fix: fresh='rebuild' for function-scoped "
            "clusters (each test's pair made by the scripts), or backend='local'."
        )
    backend = cluster.backend
    upstreams, slots, synchronous = cluster.shape()
    for node in cluster.nodes:
        node.close_connections()  # the clean stop ends them: none may be kept past it
    saved: LocalSnapshot | DockerSnapshot
    if isinstance(backend, LocalBackend):
        saved = take(backend, upstreams, into)
    else:
        from .backends import docker_snapshot

        saved = docker_snapshot.take(backend, upstreams)  # type: ignore[arg-type]
    _wait_streaming(cluster)
    return ClusterSnapshot(cluster.settings, saved, upstreams, slots, synchronous)


def _wait_streaming(cluster: Cluster) -> None:
    for standby in cluster.standbys:
        standby.poll_query_until("SELECT status FROM pg_stat_wal_receiver", "streaming")
