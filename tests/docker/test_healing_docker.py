"""A session cluster that heals, on the Docker backend (tests/healing_suite.py)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.healing_suite import run


def test_a_broken_session_cluster_is_restored_for_the_next_test(
    pytester: pytest.Pytester, docker_client: Any, lab_image: str
) -> None:
    run(pytester, "--pgstandby-backend=docker", f"--pgstandby-image={lab_image}")
