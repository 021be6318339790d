"""docs/applications.md's code, run on the Docker backend (tests/guide.py)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.guide import run


def test_the_applications_guide_runs(
    pytester: pytest.Pytester, docker_client: Any, lab_image: str
) -> None:
    run(pytester, "--pgstandby-backend=docker", f"--pgstandby-image={lab_image}")
