"""Bad input that reaches real containers (docs/errors.md has the whole matrix): each is
answered in one line naming what happened and the fix, followed by the output it was read
from; the harness's containers and network go, and nothing else is touched (the user's
image stays)."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import replace

import docker
import pytest

from pytest_pgstandby import (
    ImageIncompleteError,
    PrimaryNotReadyError,
    ReplicationAuthError,
    Settings,
    start_cluster,
)
from pytest_pgstandby.backends.containers import LABEL, LABEL_OWNER_PID
from pytest_pgstandby.backends.docker import DockerBackend
from pytest_pgstandby.backends.select import drain_warm
from tests.docker.images import derived_image

pytestmark = pytest.mark.docker


def _ours(client: docker.DockerClient) -> list[str]:
    """Containers and networks this process's harness made that are still there, once
    the warm kits other tests' clusters had made ahead (docker_warm.py) are gone."""
    drain_warm()
    mine = {"label": [f"{LABEL}=1", f"{LABEL_OWNER_PID}={os.getpid()}"]}
    return [c.name for c in client.containers.list(all=True, filters=mine, ignore_removed=True)] + [
        n.name for n in client.networks.list(filters=mine)
    ]


@pytest.fixture
def no_basebackup_image(
    docker_client: docker.DockerClient, pgstandby_settings: Settings
) -> Iterator[str]:
    """The project's image with pg_basebackup deleted, built here and removed after."""
    with derived_image(
        docker_client,
        pgstandby_settings.docker_image,
        "RUN rm /usr/lib/postgresql/*/bin/pg_basebackup /usr/bin/pg_basebackup",
    ) as tag:
        yield tag


def test_an_image_without_pg_basebackup_is_named_with_the_fix(
    docker_client: docker.DockerClient, pgstandby_settings: Settings, no_basebackup_image: str
) -> None:
    with (
        pytest.raises(ImageIncompleteError) as info,
        # version=None: this image is the one to run, whatever --pgstandby-version says
        start_cluster(
            replace(pgstandby_settings, version=None), backend="docker", image=no_basebackup_image
        ),
    ):
        pass
    lines = str(info.value).splitlines()
    assert re.sub(r"line \d+", "line N", lines[0]) == (
        f"standby1 could not be set up: image {no_basebackup_image} has no pg_basebackup, "
        "which the documented procedure runs (`/setup-standby.sh: line N: pg_basebackup: "
        "command not found`). Fix: an image with PostgreSQL's server and client programs: "
        "`pgstandby image build --pg 15` (pgstandby/postgres:15) or an official postgres "
        "image, given as --pgstandby-image / PGSTANDBY_IMAGE."
    )
    assert lines[1].startswith("  output of standby1 (pgstandby-") and "Creating base backup" in (
        str(info.value)
    )
    assert _ours(docker_client) == []
    assert docker_client.images.get(no_basebackup_image), "the user's image is not ours to remove"


def test_a_wrong_replication_password_surfaces_pg_basebackups_message(
    docker_client: docker.DockerClient, pgstandby_settings: Settings
) -> None:
    """The standby's script gets another password than the one setup-primary.sh gave the
    replication role (a primary set up with one secret, a standby given a stale one)."""
    backend = DockerBackend(pgstandby_settings.docker_image, timeout=60)
    major = backend.facts.major or 0
    try:
        primary = backend.create_primary("primary")
        backend.replication_password = "not-the-primarys-password"
        with pytest.raises(ReplicationAuthError) as info:
            backend.create_standby("standby1", primary)
    finally:
        backend.close()
    message = str(info.value)
    first = message.splitlines()[0]
    # libpq 14 names the server it could not log in to; 13's says only FATAL
    said = 'connection to server at "postgres-primary-lab"' if major >= 14 else "FATAL:  password"
    assert first.startswith(
        "standby1 could not be set up: pg_basebackup could not log in to primary as the "
        f"replication user: `pg_basebackup: error: {said}"
    )
    assert first.endswith(
        'FATAL:  password authentication failed for user "replicator"`. Fix: give the '
        "standby the replication user and password that setup-primary.sh made on the primary "
        "(POSTGRES_REPLICATION_USER and POSTGRES_REPLICATION_PASSWORD, the same on both "
        "sides), and keep its `host replication` line in the primary's pg_hba.conf."
    )
    assert "Primary is ready, creating standby from primary..." in message  # the script's
    assert "not-the-primarys-password" not in message
    assert _ours(docker_client) == []


def test_a_primary_that_never_becomes_ready_ends_a_bounded_wait_with_its_log(
    docker_client: docker.DockerClient, pgstandby_settings: Settings
) -> None:
    """The primary's processes are frozen (``docker pause``) as it starts: the standby's
    script polls it in section 1 for ever; the harness's wait ends at its bound."""
    backend = DockerBackend(pgstandby_settings.docker_image, timeout=5)
    try:
        primary = backend.create_primary("primary")
        primary.pause()
        with pytest.raises(PrimaryNotReadyError) as info:
            backend.create_standby("standby1", primary)
        primary.resume()
    finally:
        backend.close()
    message = str(info.value)
    assert message.splitlines()[0] == (
        "timed out after 5s waiting for standby1: its upstream primary "
        f"({backend.container_name('primary')}, its container paused) never became ready; "
        "setup-standby.sh is still in section 1, polling it with pg_isready (last: "
        "`postgres-primary-lab:5432 - no response`). Fix: primary's log below says why it "
        "does not start; if it is only slow, a larger --pgstandby-timeout (now 5)."
    )
    assert f"  output of primary ({backend.container_name('primary')})" in message
    assert "Waiting for primary to be ready..." in message
    assert _ours(docker_client) == []
