"""A container node's wait until it accepts connections, and, when it never will, why:
what the setup scripts printed, read for the failures they state outright (a program the
image lacks, ``pg_basebackup`` refused by its upstream) and for a standby still waiting in
section 1 of setup-standby.sh for an upstream that never became ready. Each becomes one
line with the fix, followed by the output it was read from.
"""

from __future__ import annotations

import re
import time
from typing import Protocol

from .._text import mask_secrets, tail
from ..diagnosis import BASEBACKUP_ERROR, REPLICATION_REFUSED
from ..errors import (
    BaseBackupError,
    ImageIncompleteError,
    PrimaryNotReadyError,
    ReplicationAuthError,
    SetupFailedError,
    WaitTimeoutError,
)
from .base import wait_accepting

#: Container states in which a node may still become ready (a paused upstream may resume).
_ALIVE = ("running", "created", "paused")
#: setup-standby.sh's line once section 1 (the pg_isready loop) is over
_UPSTREAM_READY = "Primary is ready, creating standby from primary..."
_NOT_FOUND = re.compile(r"^.* ([\w.-]+): (?:command )?not found\s*$", re.MULTILINE)
_PG_ISREADY = re.compile(r"^\S+:\d+ - (?:no response|rejecting connections|no attempt)$", re.M)
_SENDERS = re.compile(r"exceeds max_wal_senders")


class ContainerNode(Protocol):
    """What the wait asks of a node in a container (the Docker backend's DockerNode)."""

    @property
    def name(self) -> str: ...
    @property
    def dsn(self) -> str: ...
    def container_name(self) -> str | None: ...
    def status(self) -> str: ...
    def all_output(self) -> str: ...
    def server_gone(self) -> str | None: ...
    def unreachable(self) -> str | None: ...


def wait_container_ready(
    node: ContainerNode, upstream: ContainerNode | None, *, timeout: float, image: str
) -> None:
    """Poll until ``node`` accepts connections. Its container or its upstream's exiting
    ends the wait at once; a failure their output states raises its own error (see
    ``setup_failure``); a standby whose upstream never became ready raises
    PrimaryNotReadyError once ``timeout`` has passed."""

    started = time.monotonic()
    asked = [started]

    def exited() -> str | None:
        gone = node.server_gone()  # a kept container outlives its server
        if gone is not None:
            return gone
        for one in filter(None, (node, upstream)):
            state = one.status()
            if state in _ALIVE:
                continue
            failure = setup_failure(one, image, upstream if one is node else None)
            if failure is not None:
                raise failure
            return f"the container of {one.name} is {state}"
        # the server may be up where this process cannot reach it (a remote daemon's
        # address that is not routable from here): asked about every 2 s after the first
        # 2, of a container that runs (a stopped one takes no docker exec)
        now = time.monotonic()
        if now - started > 2 and now - asked[0] > 2 and node.status() == "running":
            asked[0] = now
            return node.unreachable()
        return None

    try:
        wait_accepting(
            lambda: node.dsn,
            what=f"{node.name} ({node.container_name()}) to accept connections",
            timeout=timeout,
            log=node.all_output,
            abort=exited,
            abort_every=0.1,  # the container's state is an API call (~4 ms): not every 1 ms
        )
    except WaitTimeoutError:
        failure = setup_failure(node, image, upstream) or _never_ready(node, upstream, timeout)
        if failure is None:
            raise
        raise failure from None


def setup_failure(
    node: ContainerNode, image: str, upstream: ContainerNode | None = None
) -> SetupFailedError | None:
    """The failure ``node``'s setup output states outright, as an error whose first line
    says what happened and the fix; None when the output states none."""
    output = node.all_output()
    head = f"{node.name} could not be set up"
    missing = _NOT_FOUND.search(output)
    if missing:
        program = missing.group(1)
        return ImageIncompleteError(
            f"{head}: image {image} has no {program}, which the documented procedure runs "
            f"(`{missing.group(0).strip()}`). Fix: an image with PostgreSQL's server and "
            "client programs: `pgstandby image build --pg 15` (pgstandby/postgres:15) or an "
            "official postgres image, given as --pgstandby-image / PGSTANDBY_IMAGE."
            + _shown(node, output)
        )
    refused = BASEBACKUP_ERROR.findall(output)
    if not refused:
        return None
    said = mask_secrets(refused[-1].strip())
    upstream_name = upstream.name if upstream is not None else "its upstream"
    if REPLICATION_REFUSED.search(said):
        return ReplicationAuthError(
            f"{head}: pg_basebackup could not log in to {upstream_name} as the replication "
            f"user: `{said}`. Fix: give the standby the replication user and password that "
            "setup-primary.sh made on the primary (POSTGRES_REPLICATION_USER and "
            "POSTGRES_REPLICATION_PASSWORD, the same on both sides), and keep its "
            "`host replication` line in the primary's pg_hba.conf." + _shown(node, output)
        )
    if _SENDERS.search(said):
        return BaseBackupError(
            f"{head}: {upstream_name} has no WAL sender left for its base backup: "
            f"`{said}`. Fix: fewer standbys on {upstream_name}, or a larger max_wal_senders "
            "there (postgresql.conf, then a restart)." + _shown(node, output)
        )
    return BaseBackupError(
        f"{head}: pg_basebackup failed: `{said}`. Fix: what pg_basebackup names above "
        "(the setup output below shows the whole run)." + _shown(node, output)
    )


def _never_ready(
    node: ContainerNode, upstream: ContainerNode | None, timeout: float
) -> PrimaryNotReadyError | None:
    """A standby still in section 1 once the wait is over: its upstream never answered."""
    output = node.all_output()
    if upstream is None or _UPSTREAM_READY in output:
        return None
    polls = _PG_ISREADY.findall(output)
    last = f"`{polls[-1]}`" if polls else "no answer yet"
    state = upstream.status()
    paused = ", its container paused" if state == "paused" else ""
    return PrimaryNotReadyError(
        f"timed out after {timeout:g}s waiting for {node.name}: its upstream "
        f"{upstream.name} ({upstream.container_name()}{paused}) never became ready; "
        "setup-standby.sh is still in section 1, polling it with pg_isready (last: "
        f"{last}). Fix: {upstream.name}'s log below says why it does not start; if it is "
        f"only slow, a larger --pgstandby-timeout (now {timeout:g})."
        + _shown(upstream, upstream.all_output())
        + _shown(node, output, lines=5)
    )


def _shown(node: ContainerNode, output: str, lines: int = 30) -> str:
    if not output.strip():
        return f"\n  output of {node.name} ({node.container_name()}): none"
    return f"\n  output of {node.name} ({node.container_name()}), last lines:\n" + tail(
        output, lines
    )
