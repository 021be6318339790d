"""The hardened profile on the local backend (tests/hardened_suite.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pytest_pgstandby import Cluster, Settings, start_cluster
from tests.hardened_suite import *  # noqa: F403


@pytest.fixture(scope="module")
def hardened(pgstandby_settings: Settings) -> Iterator[Cluster]:
    with start_cluster(
        pgstandby_settings, backend="local", profile="hardened", standbys=2
    ) as cluster:
        yield cluster


def test_the_passfile_is_the_servers_accounts_alone(hardened: Cluster) -> None:
    passfile = hardened.backend.passfile  # type: ignore[attr-defined]
    assert passfile.stat().st_mode & 0o777 == 0o600
    assert passfile.stat().st_uid == hardened.backend.account.uid  # type: ignore[attr-defined]
