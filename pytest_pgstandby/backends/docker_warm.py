"""Warm kits: the network, shared volume and containers of the next Docker cluster of the
same settings, made and started ahead in a background thread, each container holding
before its entrypoint until the cluster is asked for.

Of a pair's ~1.3 s from nothing to a streaming standby, ~0.6 s is the daemon's: a
network, two creates with their files, two starts. The procedure's part cannot begin
before the cluster is asked for, and does not: a held container runs only a shell that
waits for SIGUSR1 (``HOLD``), and its entrypoint (the primary's ``docker-entrypoint.sh``
with ``setup-primary.sh``, the standby's ``setup-standby.sh``) runs from its first line
when the build's own call for that node is made. A kit is used only where that call
would have made the very same container (``fingerprint``: image, command, environment,
files, mounts, labels, names); any other is removed and the container made then.

A kit is made after the second build of the same settings in a process (a shape asked
once, a session-scoped pair, never pays for one), or after any build a factory knows
another test will ask the same of (``select.expecting``), and never after one it knows
is the last; one at a time per shape. What is
left at the end of a session or process is removed (``drain``); a killed process's is
the reaper's, as every cluster is. ``PGSTANDBY_WARM=0`` turns kits off, ``=1`` on for an
ssh:// daemon too (``enabled``).
"""

from __future__ import annotations

import atexit
import hashlib
import json
import logging
import os
import signal
import threading
from collections import Counter
from collections.abc import Callable, Hashable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import docker.errors

from ..errors import SetupFailedError
from .containers import ahead_of_entrypoint
from .engines import daemon_url

log = logging.getLogger(__name__)

#: What a held container runs ahead of its entrypoint ("$@"): wait for SIGUSR1, once. A
#: container restart (a standby's reclone) runs the entrypoint at once: the mark is in the
#: container's own filesystem, which a restart keeps.
RELEASED = "/tmp/pgstandby-released"
HOLD = (
    f'[ -e {RELEASED} ] || {{ trap "go=1" USR1; until [ -n "${{go:-}}" ]; do '
    f'sleep 600 & s=$!; wait "$s"; kill "$s" 2>/dev/null; done; : > {RELEASED}; }}; exec "$@"'
)
#: Waits until PID 1 catches SIGUSR1 (signal 10: 512 in SigCgt), through a docker exec
#: (``top`` would be cheaper, but Podman 4's Docker-compatible one answers nothing); bash
#: alone, as any image with the scripts has it.
TRAPPED = (
    'for _ in $(seq "$1"); do while read -r k v; do [ "$k" = SigCgt: ] && m=$v; done '
    "< /proc/1/status; [ $(( 0x$m & 512 )) != 0 ] && exit 0; sleep 0.01; done; exit 1"
)
#: a build's node calls, in order: (node, its upstream's name or None for the primary, slot)
Plan = list[tuple[str, str | None, str | None]]
#: docker.py's DockerBackend and docker_node.py's DockerNode (this module is below both)
DockerBackend = Any
DockerNode = Any

_LOCK = threading.Lock()
_KITS: dict[Hashable, Future[DockerBackend | None]] = {}
_BUILT: Counter[Hashable] = Counter()
_POOL: list[ThreadPoolExecutor] = []
_DRAINING = threading.Event()


class _Drained(Exception):
    """A kit under way when the kits were drained (or the environment changed): what it
    made so far is removed."""


def enabled() -> bool:
    """PGSTANDBY_WARM: 0 off, 1 on; unset, on but for an ssh:// daemon, where each API call
    is an ssh session's and a kit's slow one competes with the tests' (the replication
    suites over ssh: 99 s without kits, 122 s with)."""
    value = os.environ.get("PGSTANDBY_WARM", "").strip().lower()
    if value:
        return value not in ("0", "false", "no", "off")
    return not daemon_url().startswith("ssh://")


def fingerprint(container: Any) -> str:
    """What the daemon would be asked to create for this testcontainers container."""
    files = [
        (
            hashlib.sha256(c if isinstance(c, bytes) else Path(c).read_bytes()).hexdigest(),
            path,
            rest,
        )
        for c, path, *rest in container._transferable_specs
    ]
    network = container._network.name if container._network is not None else None
    made = {
        "image": container.image,
        "command": container._command,
        "env": container.env,
        "ports": container.ports,
        "volumes": container.volumes,
        "tmpfs": container.tmpfs,
        "name": container._name,
        "network": [network, container._network_aliases],
        "kwargs": container._kwargs,
        "files": files,
    }
    return hashlib.sha256(json.dumps(made, sort_keys=True, default=repr).encode()).hexdigest()


def hold(node: DockerNode, timeout: float) -> None:
    """Create and start ``node``'s container with HOLD ahead of its entrypoint; return
    once the shell waits (a SIGUSR1 before its trap would be lost: PID 1 ignores what it
    does not catch)."""
    node.held = fingerprint(node.tc)
    ahead_of_entrypoint(node.tc, "bash", "-c", HOLD, "pgstandby-hold").start()
    code, out = node.wrapped.exec_run(["bash", "-c", TRAPPED, "trapped", str(int(timeout * 100))])
    if code != 0:
        raise SetupFailedError(
            f"the warm container of {node.name} did not begin to hold within {timeout:g}s "
            f"(exit {code}: {out.decode(errors='replace').strip()!r})"
        )


def adopt(held: DockerNode, asked: DockerNode) -> bool:
    """Release ``held`` when it is the container ``asked`` would be; True if it was."""
    if held.held != fingerprint(asked.tc):
        return False
    try:
        held.wrapped.kill(signal=signal.SIGUSR1)
    except docker.errors.APIError as exc:  # gone, or stopped, since it was made
        log.warning("a warm container of %s could not be released (%s); made anew", held.name, exc)
        return False
    return True


def replay(backend: DockerBackend, plan: Plan, stale: Callable[[], bool]) -> None:
    """The node calls of a build, made on ``backend`` (which holds what they start); a
    drain, or another daemon in the environment, meanwhile ends it before the next one."""
    made: dict[str, Any] = {}
    for name, upstream, slot in plan:
        if stale():
            raise _Drained
        if upstream is None:
            made[name] = backend.create_primary(name)
        else:
            made[name] = backend.create_standby(name, made[upstream], slot=slot)


def take(key: Hashable, current: Callable[[DockerBackend], bool]) -> DockerBackend | None:
    """The kit made for ``key``, if one was; ``current`` says whether it still fits (the
    image under its tag may have been rebuilt meanwhile)."""
    with _LOCK:
        future = _KITS.pop(_full(key), None)
    if future is None:
        return None
    try:
        kit = future.result()
    except Exception as exc:  # it removed what it made
        log.warning("a warm Docker kit failed, the cluster is made now: %s", exc)
        return None
    if kit is None:
        return None
    if not current(kit):
        kit.close()
        return None
    return kit


def built(
    key: Hashable, plan: Plan, make: Callable[[], DockerBackend], expected: bool | None
) -> None:
    """A cluster was built from ``plan`` for ``key``: the next one's kit is begun (``make``
    opens its backend) where another is ``expected``, or, not knowing (None), from the
    second such build on."""
    if not enabled() or not plan or expected is False:
        return
    full = _full(key)
    with _LOCK:
        _BUILT[full] += 1
        if (_BUILT[full] < 2 and not expected) or full in _KITS:
            return
        if not _POOL:
            _POOL.append(ThreadPoolExecutor(max_workers=1, thread_name_prefix="pgstandby-warm"))
            atexit.register(drain)
        _KITS[full] = _POOL[0].submit(_make, key, full, make, list(plan))


def _make(
    key: Hashable, full: Hashable, make: Callable[[], DockerBackend], plan: Plan
) -> DockerBackend | None:
    """The kit, or None if the kits were drained or the environment changed meanwhile (a
    test's own DOCKER_HOST: a kit must be of the daemon its key names)."""

    def stale() -> bool:
        return _DRAINING.is_set() or _full(key) != full

    if stale():
        return None
    kit = make()
    try:
        kit.hold_ahead(plan, stale)
    except _Drained:
        kit.close()
        return None
    except BaseException:
        kit.close()
        raise
    return kit


def _full(key: Hashable) -> Hashable:
    """The settings' key with what else decides a backend: the daemon, the environment."""
    prefixes = ("DOCKER_", "PGSTANDBY_", "TESTCONTAINERS_")
    env = tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith(prefixes)))
    return (key, daemon_url(), env)


def drain() -> None:
    """Remove every kit not taken (the end of a session, of the process); one under way
    stops before its next container."""
    with _LOCK:
        futures = list(_KITS.values())
        _KITS.clear()
        _BUILT.clear()
        _DRAINING.set()
    try:
        for future in futures:
            if future.cancel():
                continue
            try:
                kit = future.result()
            except Exception as exc:  # it removed what it had made
                log.warning("a warm Docker kit failed: %s", exc)
                continue
            try:
                if kit is not None:
                    kit.close()
            except Exception as exc:
                log.warning("a warm Docker kit could not be removed: %s", exc)
    finally:
        _DRAINING.clear()
