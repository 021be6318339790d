"""A downstream session on the Docker backend leaves no container and no network."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_pgstandby import Settings
from pytest_pgstandby.backends.docker import LABEL_CLUSTER


def test_docker_session_leaves_nothing_labelled(
    pytester: pytest.Pytester, docker_client, pgstandby_settings: Settings, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    record = tmp_path / "cluster-id"
    pytester.makepyfile(
        f"""
        def test_streams(pgstandby_cluster, pgstandby_primary, pgstandby_standby):
            open({str(record)!r}, "w").write(pgstandby_cluster.backend.cluster)
            pgstandby_primary.execute("CREATE TABLE s AS SELECT 1 AS x")
            pgstandby_primary.wait_for_catchup(pgstandby_standby)
            assert pgstandby_standby.execute("SELECT x FROM s") == [(1,)]
        """
    )
    result = pytester.runpytest_subprocess(
        "--pgstandby-backend=docker", f"--pgstandby-image={pgstandby_settings.docker_image}"
    )
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["pgstandby: docker -> docker: Docker daemon answers*"])
    label = {"label": f"{LABEL_CLUSTER}={record.read_text()}"}
    assert docker_client.containers.list(all=True, filters=label, ignore_removed=True) == []
    assert docker_client.networks.list(filters=label) == []


@pytest.mark.parametrize(
    ("image", "header", "backend"),
    [
        (
            "present",
            "pgstandby: auto -> docker: Docker daemon answers and image * is present (PostgreSQL *",
            "docker",
        ),
        (
            "pgstandby/postgres:not-built",
            "pgstandby: auto -> local: image * is not present*",
            "local",
        ),
    ],
)
def test_auto_picks_docker_only_when_the_image_is_there_and_says_why(
    pytester: pytest.Pytester,
    docker_client,
    pgstandby_settings: Settings,
    image: str,
    header: str,
    backend: str,
) -> None:  # type: ignore[no-untyped-def]
    image = pgstandby_settings.docker_image if image == "present" else image
    pytester.makepyfile(
        f"""
        def test_backend(pgstandby_cluster):
            assert pgstandby_cluster.backend.name == {backend!r}
            assert pgstandby_cluster.standby.is_in_recovery()
        """
    )
    result = pytester.runpytest_subprocess("--pgstandby-backend=auto", f"--pgstandby-image={image}")
    result.stdout.fnmatch_lines([header])
    result.assert_outcomes(passed=1)
