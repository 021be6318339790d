"""Snapshots of a local cluster: every node's data directory (the standbys' included, as
lab/setup-standby.sh left them) and its setup output, copied while the servers are
stopped cleanly; restored into a new session directory with new ports in ~0.2 s instead
of a new initdb, setup-primary.sh and base backup per standby.

What a restore changes, and only that: each node's port (its command line, as always
here), and the upstream's port inside the standbys' ``primary_conninfo`` lines (the one
``pg_basebackup -R`` wrote to ``postgresql.auto.conf`` and the one the script appended to
``postgresql.conf``), the value the script was given. Every restored cluster shares the
snapshot's system identifier.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..errors import SetupFailedError, WaitTimeoutError
from . import reaper
from .base import Role
from .local import LocalBackend
from .local_node import LocalNode
from .owners import owner_stamp
from .sessions import OWNER_MARK, ROOT_PREFIX, filesystem_problem

SNAPSHOT_PREFIX = ROOT_PREFIX + "snapshot-"  # swept like a session root once its owner dies
_PORT = re.compile(r"\bport=(\d+)")


@dataclass(frozen=True)
class SnapshotNode:
    name: str
    role: Role
    port: int  # when the snapshot was taken: what the standbys' primary_conninfo says
    upstream: str | None
    slot: str | None  # the upstream's slot it streams through


@dataclass
class LocalSnapshot:
    """The files of a stopped cluster; ``close()`` removes them."""

    root: Path
    nodes: tuple[SnapshotNode, ...]
    binaries: str  # the server binaries that wrote the files, which must read them again
    passwords: tuple[str, str]  # superuser, replication: in the copied files already

    def close(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)
        reaper.release_local(self.root)


def take(
    backend: LocalBackend, upstreams: dict[str, str], into: Path | None = None
) -> LocalSnapshot:
    """Stop the nodes (the primary first, so that its standbys receive its shutdown
    checkpoint), copy them, and start them again. ``into``: a new directory of that name
    (a run's shared snapshot), else one made in the harness directory."""
    if into is None:
        root = Path(tempfile.mkdtemp(prefix=SNAPSHOT_PREFIX, dir=backend.base))
        reaper.watch_local(root, backend.uids)  # gone within seconds of a SIGKILL
    else:  # in a run's directory, which is watched as a whole
        into.mkdir(mode=0o700)
        root = into
    try:
        (root / OWNER_MARK).write_text(owner_stamp())
        backend.account.chown(root)
        for node in backend.nodes:
            node.stop("fast")
        _copy([n.data_dir for n in backend.nodes], root, backend)
        for node in backend.nodes:
            if node.setup_path.exists():
                shutil.copyfile(node.setup_path, root / f"{node.name}-setup.out")
        os.chmod(root, 0o755)
        _start(backend.nodes)
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)
        raise
    nodes = tuple(
        SnapshotNode(n.name, n.role, n.port, upstreams.get(n.name), n.slot) for n in backend.nodes
    )
    passwords = (backend.superuser_password, backend.replication_password)
    return LocalSnapshot(root, nodes, backend.bins.describe(), passwords)


def restore(backend: LocalBackend, snapshot: LocalSnapshot) -> list[LocalNode]:
    """New nodes of ``backend`` from the snapshot, started; in the snapshot's order. The
    copies run side by side, and the primary starts as soon as its own copy is done."""
    if backend.bins.describe() != snapshot.binaries:
        raise SetupFailedError(
            f"the snapshot {snapshot.root} was written by {snapshot.binaries}, not by "
            f"{backend.bins.describe()}. Fix: restore it with the same --pgstandby-pg-bin."
        )
    backend.superuser_password, backend.replication_password = snapshot.passwords
    copies = [
        _copy_start([str(snapshot.root / n.name)], backend.root, backend) for n in snapshot.nodes
    ]
    new_port = {n.port: backend.reserve() for n in snapshot.nodes}
    nodes: dict[str, LocalNode] = {}
    try:
        for saved, copy in zip(snapshot.nodes, copies, strict=True):
            _copy_wait(copy, backend)
            node = backend.adopt(saved.name, saved.role, new_port[saved.port], saved.slot)
            setup = snapshot.root / f"{saved.name}-setup.out"
            text = setup.read_text(errors="replace") if setup.exists() else ""
            node.setup_path.write_text(
                text + f"\n[pytest-pgstandby] restored from the snapshot {snapshot.root} of "
                "the run above; primary_conninfo ports now point at the restored upstream\n"
            )
            if saved.upstream is not None:
                for conf in ("postgresql.auto.conf", "postgresql.conf"):
                    path = Path(node.data_dir) / conf
                    path.write_text(_repoint(path.read_text(), new_port))
                node.script_env = backend.standby_env(node, nodes[saved.upstream].port)
            else:
                node.launch()
            nodes[saved.name] = node
    finally:
        for copy in copies:
            copy.wait()
    _start(list(nodes.values()))
    return list(nodes.values())


def _start(nodes: list[LocalNode]) -> None:
    """The primary first: a standby that starts before its upstream accepts connections
    retries only after wal_retrieve_retry_interval (0.5 s). The standbys side by side."""
    nodes[0].start()
    for node in nodes[1:]:
        node.launch()
    for node in nodes[1:]:
        node.wait_ready()


def _repoint(text: str, ports: dict[int, int]) -> str:
    """``port=OLD`` to ``port=NEW`` in the ``primary_conninfo`` lines only."""

    def swap(match: re.Match[str]) -> str:
        return f"port={ports.get(int(match[1]), match[1])}"

    return "".join(
        _PORT.sub(swap, line) if line.lstrip().startswith("primary_conninfo") else line
        for line in text.splitlines(keepends=True)
    )


def _copy_start(sources: list[str], into: Path, backend: LocalBackend) -> subprocess.Popen[str]:
    """``cp -a`` as the servers' account (ownership and modes kept)."""
    return subprocess.Popen(
        ["cp", "-a", *sources, str(into)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        **backend.account.popen_kwargs(),
    )


def _copy_wait(copy: subprocess.Popen[str], backend: LocalBackend) -> None:
    try:
        _, err = copy.communicate(timeout=backend.timeout)
    except subprocess.TimeoutExpired:
        copy.kill()
        copy.wait()
        argv = [str(a) for a in copy.args] if isinstance(copy.args, list) else [str(copy.args)]
        raise WaitTimeoutError(
            f"timed out after {backend.timeout:g}s waiting for `{shlex.join(argv)}` to "
            "finish; it was killed. Fix: a larger --pgstandby-timeout, or a snapshot on a "
            "faster filesystem (PGSTANDBY_TMPDIR)."
        ) from None
    if copy.returncode != 0:
        cause = filesystem_problem(err)
        said = f"{cause}.\n{err.strip()[-3000:]}" if cause else err.strip()
        raise SetupFailedError(f"`{copy.args!r}` failed: {said}")


def _copy(sources: list[str], into: Path, backend: LocalBackend) -> None:
    _copy_wait(_copy_start(sources, into, backend), backend)
