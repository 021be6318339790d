"""Fixture factories, as pytest-postgresql has them: a cluster fixture with other settings.

>>> from pytest_pgstandby import factories
>>> two_standbys = factories.cluster(scope="module", standbys=2)   # in a conftest.py
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from .cluster import Cluster


def cluster(
    scope: str = "session",
    *,
    standbys: int | None = None,
    backend: str | None = None,
    image: str | None = None,
    pg_bin: str | None = None,
    keep: str | None = None,
    timeout: float | None = None,
) -> Callable[..., Any]:
    """Make a cluster fixture. Unset arguments come from the command line, ini file and
    environment; with ``scope="function"`` a ``@pytest.mark.pgstandby(...)`` marker on
    the test overrides them too."""
    overrides = {
        "standbys": standbys,
        "backend": backend,
        "image": image,
        "pg_bin": pg_bin,
        "keep": keep,
        "timeout": timeout,
    }
    overrides = {k: v for k, v in overrides.items() if v is not None}

    @pytest.fixture(scope=scope)  # type: ignore[call-overload, untyped-decorator]
    def _cluster_fixture(request: pytest.FixtureRequest) -> Iterator[Cluster]:
        from .plugin import cluster_for_request

        yield from cluster_for_request(request, overrides)

    return _cluster_fixture  # type: ignore[no-any-return]
