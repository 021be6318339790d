"""A session cluster that heals, on the local backend (tests/healing_suite.py)."""

from __future__ import annotations

import pytest

from tests.healing_suite import run


def test_a_broken_session_cluster_is_restored_for_the_next_test(
    pytester: pytest.Pytester,
) -> None:
    run(pytester, "--pgstandby-backend=local")
