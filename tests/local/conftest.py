from __future__ import annotations

from collections.abc import Iterator

import pytest

from pytest_pgstandby import Cluster, start_cluster


@pytest.fixture(scope="module")
def pair(pgstandby_settings) -> Iterator[Cluster]:  # type: ignore[no-untyped-def]
    with start_cluster(pgstandby_settings, backend="local", standbys=1) as cluster:
        yield cluster
