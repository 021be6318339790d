"""Snapshots of a Docker cluster: every container's data directory (the standbys' as
lab/setup-standby.sh left them) as a compressed tar, taken while the servers are stopped
cleanly, with each node's setup output; restored into new containers of a new cluster
(its own network, shared volume and published ports) before their servers start, instead
of the primary's initdb and setup script and a base backup per standby.

The data directories are tmpfs mounts, which the daemon's archive API does not see (it
reads the container's root filesystem): ``tar`` runs inside the container, its output
read through ``docker exec``. A restore makes each container as the original was, with
the archive and restore.sh copied in before it starts; restore.sh unpacks it at the
first start and runs the server (a standby's once its upstream accepts connections).

A restore changes nothing in the files: each cluster has a network of its own, where
the nodes keep their aliases (``postgres-primary-lab``, ...) and port 5432, which is all
the standbys' ``primary_conninfo`` names. The archives are kept in this process's memory
(a WAL segment is 16 MB, mostly zeros: a pair's ~90 MB keep as a few MB), so a snapshot
leaves nothing where a killed process could leave it. Every restored cluster shares the
snapshot's system identifier.
"""

from __future__ import annotations

import posixpath
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from ..errors import SetupFailedError
from .base import Role
from .docker import DockerBackend, DockerNode
from .docker_node import PGDATA


@dataclass(frozen=True)
class SavedContainer:
    name: str
    role: Role
    alias: str  # its name in the cluster's network: what a downstream's conninfo says
    upstream: str | None
    slot: str | None  # the upstream's slot it streams through
    archive: bytes  # PGDATA as a gzip-compressed tar, rooted at its parent directory
    setup: str  # the setup output of the run that built it


@dataclass
class DockerSnapshot:
    """The data directories of a stopped Docker cluster, in memory; ``close()`` lets them go."""

    image: str  # the image id whose servers wrote the files, which must read them again
    image_name: str
    engine: str  # the daemon's URL: a restore runs there
    nodes: tuple[SavedContainer, ...]
    passwords: tuple[str, str]  # superuser, replication: in the copied files already

    @property
    def root(self) -> str:
        """How a restored node's setup output names where it came from."""
        return f"of image {self.image_name} in memory"

    def close(self) -> None:
        self.nodes = ()


def take(backend: DockerBackend, upstreams: dict[str, str]) -> DockerSnapshot:
    """Stop the nodes (the primary first, so that its standbys receive its shutdown
    checkpoint), read their data directories, and start them again."""
    nodes = list(backend.nodes)
    for node in nodes:
        node.stop("fast")
    try:
        with ThreadPoolExecutor(max(1, len(nodes)), "pgstandby-snapshot") as reading:
            archives = list(reading.map(_read, nodes))
        saved = tuple(
            SavedContainer(
                n.name, n.role, n.alias, upstreams.get(n.name), n.slot, archive, n.setup_output()
            )
            for n, archive in zip(nodes, archives, strict=True)
        )
    finally:
        _start(nodes)
    passwords = (backend.superuser_password, backend.replication_password)
    return DockerSnapshot(backend.image_id, backend.image, backend.engine.url, saved, passwords)


def restore(backend: DockerBackend, snapshot: DockerSnapshot) -> list[DockerNode]:
    """New containers of ``backend`` holding the snapshot's files, their servers started;
    in the snapshot's order (the primary first). Each container is made as the original
    was (its spec, entrypoint and values), with the archive and restore.sh copied in:
    they start side by side, and each standby's server waits for its upstream."""
    image = backend.image_id
    if image != snapshot.image or backend.engine.url != snapshot.engine:
        raise SetupFailedError(
            f"the snapshot was taken of {snapshot.image_name} ({snapshot.image[:19]}) on "
            f"{snapshot.engine}, not of {backend.image} ({image[:19]}) on "
            f"{backend.engine.url}. Fix: restore it with the image and daemon that built it."
        )
    if not snapshot.nodes:
        raise SetupFailedError("the snapshot was closed; its files are gone. Fix: take another.")
    backend.superuser_password, backend.replication_password = snapshot.passwords
    made: dict[str, DockerNode] = {}
    for saved in snapshot.nodes:
        if saved.upstream is None:
            node = backend.create_primary(saved.name, restore=saved.archive)
        else:
            node = backend.create_standby(
                saved.name,
                made[saved.upstream],
                saved.slot,
                restore=saved.archive,
                alias=saved.alias,
                wait=False,
            )
        node.role = saved.role
        node.restored_setup = (
            saved.setup + f"\n[pytest-pgstandby] restored from the snapshot {snapshot.root} "
            "of the run above, into a new container; primary_conninfo unchanged (the same "
            "aliases and port in a network of this cluster's own)\n"
        )
        made[saved.name] = node
    for node in made.values():
        node.wait_ready()
    return list(made.values())


def _read(node: DockerNode) -> bytes:
    parent, name = posixpath.split(PGDATA)
    script = f'set -o pipefail; tar -C "{parent}" -cf - "{name}" | gzip -1'
    code, (out, err) = node.wrapped.exec_run(["bash", "-c", script], user="root", demux=True)
    if code != 0 or not out:
        said = (err or b"").decode(errors="replace").strip()
        raise SetupFailedError(
            f"could not read {node.name}'s data directory in container "
            f"{node.container_name()} (tar exited with status {code}): {said}"
        )
    return bytes(out)


def _start(nodes: list[DockerNode]) -> None:
    """The primary first (a standby that starts before its upstream accepts connections
    retries only after wal_retrieve_retry_interval, 0.5 s), then the standbys side by side."""
    if not nodes:
        return
    nodes[0].start()
    with ThreadPoolExecutor(max(1, len(nodes) - 1), "pgstandby-start") as starting:
        list(starting.map(DockerNode.start, nodes[1:]))
