"""PostgreSQL 18's official image moved PGDATA to /var/lib/postgresql/18/docker (and its
VOLUME to /var/lib/postgresql). No registry is reachable here, so an image with that
layout is made from the 17 lab image. The harness pins PGDATA and works on it; the lab
pins it too, and when it is not pinned, `lab doctor` names the server that runs elsewhere."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace

import docker
import pytest

from pytest_pgstandby import Settings, start_cluster
from pytest_pgstandby.backends.sessions import free_port
from tests.docker.compose import ComposeLab, run
from tests.docker.images import derived_image, ensure_images

pytestmark = pytest.mark.docker

PINNED = "/var/lib/postgresql/data"
MOVED = "/var/lib/postgresql/17/docker"  # where an 18-style image of 17 keeps its data


@pytest.fixture(scope="module")
def moved_image(docker_client: docker.DockerClient) -> Iterator[str]:
    base = ensure_images(("17",))["17"]
    with derived_image(
        docker_client,
        base,
        f"ENV PGDATA={MOVED}",
        'RUN mkdir -p "$PGDATA" && chown postgres:postgres "$PGDATA" && chmod 0700 "$PGDATA"',
        "VOLUME /var/lib/postgresql",
    ) as tag:
        yield tag


def test_the_harness_pins_pgdata_on_an_image_that_moved_it(
    pgstandby_settings: Settings, moved_image: str
) -> None:
    settings = replace(pgstandby_settings, version=None)
    with start_cluster(settings, backend="docker", image=moved_image) as cluster:
        for node in cluster.nodes:
            assert node.query_value("SHOW data_directory") == PINNED
        cluster.primary.execute("CREATE TABLE moved AS SELECT 18 AS layout")
        cluster.primary.wait_for_catchup(cluster.standby)
        assert cluster.standby.execute("SELECT layout FROM moved") == [(18,)]
        assert cluster.standby.file_exists("standby.signal")


def _lab(moved_image: str, pgdata: str | None) -> ComposeLab:
    lab = ComposeLab(f"pgstandby-pgdata-{uuid.uuid4().hex[:8]}", free_port(), free_port())
    lab.env["COMPOSE_PROJECT_NAME"] = lab.project
    lab.env["PGSTANDBY_IMAGE"] = moved_image
    if pgdata:
        lab.env["PGSTANDBY_LAB_PGDATA"] = pgdata
    return lab


def _cli(lab: ComposeLab, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest_pgstandby.cli", "lab", *args],
        env=lab.env,
        capture_output=True,
        text=True,
        timeout=240,
    )


@pytest.mark.parametrize("pinned", [False, True], ids=["unpinned", "pinned"])
def test_lab_doctor_names_a_server_that_runs_off_the_procedures_directory(
    docker_client: docker.DockerClient, moved_image: str, pinned: bool
) -> None:
    lab = _lab(moved_image, None if pinned else MOVED)
    try:
        started = time.monotonic()
        up = _cli(lab, "up")
        took = time.monotonic() - started
        doctor = _cli(lab, "doctor")
        on_volume = run(["docker", "exec", lab.primary, "ls", "-A", PINNED], check=True).stdout
        if pinned:
            assert up.returncode == 0, up.stdout + up.stderr
            assert f"ok      data directory: {PINNED}" in doctor.stdout, doctor.stdout
            assert "PG_VERSION" in on_volume.split()
            return
        # Unpinned, the entrypoint prepares (chown, chmod) only the image's PGDATA: the
        # standby's server cannot read what the procedure wrote as root in its directory
        # and exits; `lab up` says so as soon as it sees it
        assert up.returncode == 2
        assert took < 60, f"lab up gave up after {took:.0f} s, not when the standby exited"
        assert f"the lab's standby ({lab.standby}) has exited; its log ends:" in up.stderr
        assert (
            f'could not open configuration file "{PINNED}/postgresql.conf": Permission denied'
            in (up.stderr)
        )
        # and the primary's whole cluster lives off the lab's volume (gone with the container)
        assert on_volume.split() == [], f"the primary volume holds: {on_volume}"
        assert doctor.returncode != 0
        assert (
            f"BROKEN  data directory: {lab.primary} runs from {MOVED}, not {PINNED} where the "
            "procedure writes (standby.signal, pg_hba.conf) and the lab keeps its volumes: the "
            "image moved PGDATA (postgres:18 uses /var/lib/postgresql/18/docker) and nothing "
            "pinned it\n"
            f"        fix: set PGDATA={PINNED} in the containers' environment "
            "(lab/docker-compose.yml pins it), then `pgstandby lab down` and `lab up`; or "
            "give the procedure that directory (PGSTANDBY_DATA_DIR)"
        ) in doctor.stdout, doctor.stdout
    finally:
        lab.remember_volumes()
        down = lab.run("down", "-v", "--remove-orphans")
        assert down.returncode == 0, down.stderr
        assert not lab.leftovers(), lab.leftovers()
