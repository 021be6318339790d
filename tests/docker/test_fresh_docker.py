"""fresh= on the Docker backend: a Docker pair cannot be snapshotted; auto rebuilds, an
explicit snapshot names the fix."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize(
    ("fresh", "outcome", "line"),
    [
        ("snapshot", {"errors": 1}, "*fresh='snapshot' copies data directories*rebuild*"),
        ("auto", {"passed": 1}, "*1 passed*"),
    ],
)
def test_fresh_on_docker(
    pytester: pytest.Pytester, docker_client, fresh: str, outcome: dict[str, int], line: str
) -> None:  # type: ignore[no-untyped-def]
    pytester.makeconftest(
        f"""
        from pytest_pgstandby import factories

        fresh = factories.cluster(scope="function", fresh={fresh!r})
        """
    )
    pytester.makepyfile(
        """
        def test_one(fresh):
            assert fresh.backend.name == "docker"
            assert "restored" not in fresh.standby.setup_output()
        """
    )
    result = pytester.runpytest_subprocess(
        "-p",
        "no:cacheprovider",
        "--pgstandby-backend",
        "docker",
        "--pgstandby-image",
        "pgstandby/postgres:15",
    )
    result.assert_outcomes(**outcome)
    result.stdout.fnmatch_lines([line])
