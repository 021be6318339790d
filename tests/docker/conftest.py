from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import Any

import pytest

from pytest_pgstandby import Cluster, DockerUnavailableError, Settings, start_cluster
from pytest_pgstandby.backends.docker import connect_docker
from tests.docker.compose import PG_MAJOR
from tests.docker.images import ensure_images


@pytest.fixture(scope="session")
def docker_client():  # type: ignore[no-untyped-def]
    """A docker-py client; the only reason a Docker test may skip is a daemon that does
    not answer."""
    try:
        client = connect_docker(timeout=5)
    except DockerUnavailableError as exc:
        if os.environ.get("PGSTANDBY_REQUIRE_DOCKER"):  # .ci/run: a daemon was started
            pytest.fail(f"PGSTANDBY_REQUIRE_DOCKER is set, but {exc}", pytrace=False)
        pytest.skip(f"no Docker daemon: {exc}")
    yield client
    client.close()


@pytest.fixture(scope="module")
def pair(docker_client, pgstandby_settings: Settings) -> Iterator[Cluster]:  # type: ignore[no-untyped-def]
    with start_cluster(pgstandby_settings, backend="docker", standbys=1) as cluster:
        yield cluster


@pytest.fixture
def make_cluster(docker_client, pgstandby_settings: Settings):  # type: ignore[no-untyped-def]
    """A cluster of its own for a scenario: ``with make_cluster(standbys=2) as c: ...``."""

    def make(**settings: Any) -> AbstractContextManager[Cluster]:
        return start_cluster(pgstandby_settings, backend="docker", **settings)

    return make


@pytest.fixture(scope="module")
def lab_image(docker_client) -> str:  # type: ignore[no-untyped-def]
    """The lab image, built once (build.sh itself caches and serialises with flock)."""
    started = time.monotonic()
    image = ensure_images((PG_MAJOR,))[PG_MAJOR]
    print(f"lab image {image} ready in {time.monotonic() - started:.1f} s")
    return image
