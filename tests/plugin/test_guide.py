"""docs/applications.md's code, run on the local backend (tests/guide.py)."""

from __future__ import annotations

import pytest

from tests.guide import run


def test_the_applications_guide_runs(pytester: pytest.Pytester) -> None:
    run(pytester, "--pgstandby-backend=local")
