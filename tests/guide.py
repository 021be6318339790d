"""docs/applications.md runs: its ```python blocks, in order, as one test module (a block
tagged ```python conftest.py goes to conftest.py), through pytester on one backend.
tests/plugin/test_guide.py runs it on the local backend, tests/docker/test_guide_docker.py
on Docker."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

GUIDE = Path(__file__).resolve().parents[1] / "docs" / "applications.md"


def blocks() -> tuple[str, str]:
    """(conftest.py, the test module) from the guide's code blocks."""
    conftest, module = [], []
    for info, body in re.findall(r"^```(python[^\n]*)\n(.*?)^```", GUIDE.read_text(), re.M | re.S):
        (conftest if info.strip() == "python conftest.py" else module).append(body)
    return "\n\n".join(conftest), "\n\n".join(module)


def run(pytester: pytest.Pytester, *args: str) -> None:
    conftest, module = blocks()
    assert "def test_" in module and "factories.cluster" in conftest
    pytester.makeconftest(conftest)
    pytester.makepyfile(test_guide=module)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", *args)
    tests = len(re.findall(r"^def test_", module, re.M))
    result.assert_outcomes(passed=tests)
