"""A watchdog per process that made servers: what Ryuk does for testcontainers, needing no
image. The first backend of a process starts ``python -m pytest_pgstandby.backends.reaper``
in a session of its own, with a pipe on its stdin; backends tell it what they made
(``watch``) and what they removed themselves (``release``). When the pipe ends without a
release (the process was killed, even with SIGKILL, whose death closes the pipe) the
reaper removes what is still watched at once: stops a local session's servers and removes
its directory and port marks; removes a Docker cluster's containers and network. It acts
only on what it was told, and signals only the processes a session recorded (and their
descendants of the accounts it was given).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any

from .owners import owner_alive
from .sessions import orphan_segments, processes_under, remove_session

log = logging.getLogger(__name__)


class _Client:
    """This process's pipe to its reaper (started at the first ``watch``)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.proc: subprocess.Popen[bytes] | None = None
        self.owner = 0

    def send(self, message: dict[str, Any]) -> None:
        with self.lock:
            try:
                pipe = self._pipe()
                pipe.write(json.dumps(message).encode() + b"\n")
                pipe.flush()
            except OSError as exc:  # no reaper: the next session's sweep is the fallback
                log.warning("the reaper is not running (%s); leftovers wait for a sweep", exc)

    def _pipe(self) -> IO[bytes]:
        if self.proc is None or self.owner != os.getpid() or self.proc.poll() is not None:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", __name__],
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                cwd="/",
                start_new_session=True,  # a Ctrl-C or a group kill of pytest spares it
            )
            self.owner = os.getpid()
        assert self.proc.stdin is not None
        return self.proc.stdin


_client = _Client()


def watch_local(root: Path, uids: set[int]) -> None:
    """Remove ``root`` (after killing the processes recorded for it and their descendants
    of ``uids``) if this process dies before ``release_local(root)``."""
    _client.send({"op": "watch", "key": f"local:{root}", "root": str(root), "uids": sorted(uids)})


def release_local(root: Path) -> None:
    _client.send({"op": "release", "key": f"local:{root}"})


def watch_after_owner(root: Path, uids: set[int], owner: str) -> None:
    """Remove ``root`` once the process ``owner`` (an owner stamp) is gone too, when this
    process dies without ``release_local(root)``: a directory shared with other processes
    that its owner removes at its own end (an xdist run's, owned by the controller)."""
    key = f"local:{root}"
    _client.send(
        {"op": "watch", "key": key, "root": str(root), "uids": sorted(uids), "after": owner}
    )


def watch_template(staging: Path, uids: set[int], servers_uid: int, since: float) -> None:
    """A template being made by initdb: if this process dies before ``release_local``,
    remove ``staging`` once no process works in it any more, and the shared memory
    segments (``/dev/shm/PostgreSQL.*``) initdb's killed backends left: those of
    ``servers_uid``, made since ``since`` (a time.time()), mapped by no process."""
    _client.send(
        {
            "op": "watch",
            "key": f"local:{staging}",
            "root": str(staging),
            "uids": sorted(uids),
            "segments": [servers_uid, since],
        }
    )


def watch_file(path: Path) -> None:
    _client.send({"op": "watch", "key": f"file:{path}", "file": str(path)})


def release_file(path: Path) -> None:
    _client.send({"op": "release", "key": f"file:{path}"})


def watch_docker(cluster_label: str, owner_label: str, daemon: str) -> None:
    """Remove the containers, networks and volumes labelled ``cluster_label`` (a
    ``key=value``) and ``owner_label`` on ``daemon`` (its URL: the reaper may have been
    started under another DOCKER_HOST) if this process dies before ``release_docker``."""
    _client.send(
        {
            "op": "watch",
            "key": f"docker:{cluster_label}",
            "labels": [cluster_label, owner_label],
            "daemon": daemon,
        }
    )


def release_docker(cluster_label: str) -> None:
    _client.send({"op": "release", "key": f"docker:{cluster_label}"})


def _reap(entry: dict[str, Any]) -> None:
    if "labels" in entry:
        _reap_docker(entry)
    elif "after" in entry:
        # the owner removes it at its end; only if it died too is it ours to remove
        while owner_alive(entry["after"]):
            time.sleep(0.2)
        remove_session(Path(entry["root"]), set(entry["uids"]))
    elif "segments" in entry:
        root = Path(entry["root"])
        deadline = time.monotonic() + 10  # initdb may outlive its caller for a moment
        while processes_under(root) and time.monotonic() < deadline:
            time.sleep(0.1)
        remove_session(root, set(entry["uids"]))
        uid, since = entry["segments"]
        for segment in orphan_segments(int(uid), float(since)):
            segment.unlink(missing_ok=True)
    elif "root" in entry:
        remove_session(Path(entry["root"]), set(entry["uids"]))
    elif "file" in entry:
        Path(entry["file"]).unlink(missing_ok=True)


def _reap_docker(entry: dict[str, Any]) -> None:
    from .containers import _remove, connect_docker, remove_network

    if entry.get("daemon"):
        os.environ["DOCKER_HOST"] = entry["daemon"]  # the daemon the owner used
    client = connect_docker()
    labels = {"label": entry["labels"]}
    for container in client.containers.list(all=True, filters=labels, ignore_removed=True):
        _remove(container, force=True, v=True)
    for network in client.networks.list(filters=labels):
        remove_network(network, timeout=10)
    for volume in client.volumes.list(filters=labels):
        _remove(volume, force=True)
    client.close()


def _order(entry: dict[str, Any]) -> int:
    if "labels" in entry:
        return 0
    return 3 if "after" in entry else 2 if "file" in entry else 1


def main() -> None:
    watched: dict[str, dict[str, Any]] = {}
    for line in sys.stdin.buffer:
        with contextlib.suppress(ValueError, KeyError):
            message = json.loads(line)
            if message["op"] == "watch":
                watched[message["key"]] = message
            else:
                watched.pop(message["key"], None)
    # The pipe ended: the owner exited. Docker first (its containers hold the network),
    # then directories, then marks; last what waits for another process to end.
    for entry in sorted(watched.values(), key=_order):
        with contextlib.suppress(Exception):
            _reap(entry)


if __name__ == "__main__":
    main()
