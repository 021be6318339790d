"""The hardened profile on the Docker backend (tests/hardened_suite.py)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import pytest

from pytest_pgstandby import Cluster, Settings, start_cluster
from pytest_pgstandby.backends.docker import PASSFILE_IN_CONTAINER
from tests.hardened_suite import *  # noqa: F403

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
def hardened(docker_client, pgstandby_settings: Settings) -> Iterator[Cluster]:  # type: ignore[no-untyped-def]
    with start_cluster(
        pgstandby_settings, backend="docker", profile="hardened", standbys=2
    ) as cluster:
        yield cluster


def test_the_passfile_in_the_standby_is_postgres_alone(hardened: Cluster) -> None:
    container = hardened.standby.container_name()
    assert container is not None
    shown = subprocess.run(
        ["docker", "exec", container, "stat", "-c", "%a %U", PASSFILE_IN_CONTAINER],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert shown.stdout.split() == ["600", "postgres"], shown.stdout + shown.stderr
