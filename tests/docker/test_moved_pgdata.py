"""PostgreSQL 18's official image moved PGDATA to /var/lib/postgresql/18/docker (and its
VOLUME to /var/lib/postgresql). No registry is reachable here, so an image with that
layout is made from the 17 lab image. The harness pins PGDATA and works on it; the lab
pins it too, and when it is not pinned, `lab doctor` names the servers that run elsewhere."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace

import docker
import pytest

from pytest_pgstandby import Server, Settings, assert_streaming, start_cluster
from pytest_pgstandby.classroom.doctor import diagnose
from tests.docker.compose import own_lab, run
from tests.docker.images import derived_image, ensure_images

pytestmark = pytest.mark.docker

PINNED = "/var/lib/postgresql/data"
MOVED = "/var/lib/postgresql/17/docker"  # where an 18-style image of 17 keeps its data


@pytest.fixture(scope="module")
def moved_image(docker_client: docker.DockerClient) -> Iterator[str]:
    """pgstandby/postgres:17 with postgres:18's layout, built here and removed after."""
    base = ensure_images(("17",))["17"]
    with derived_image(
        docker_client,
        base,
        f"ENV PGDATA={MOVED}",
        'RUN mkdir -p "$PGDATA" && chown postgres:postgres "$PGDATA" && chmod 0700 "$PGDATA"',
        "VOLUME /var/lib/postgresql",
    ) as tag:
        yield tag


def _volumes(client: docker.DockerClient, container: str) -> dict[str, str]:
    """The volumes mounted in a container: {mount point: volume name}."""
    mounts = client.containers.get(container).attrs["Mounts"]
    return {m["Destination"]: m["Name"] for m in mounts if m["Type"] == "volume"}


def _networks(client: docker.DockerClient, container: str) -> set[str]:
    return set(client.containers.get(container).attrs["NetworkSettings"]["Networks"])


def test_the_harness_pins_pgdata_on_an_image_that_moved_it(
    docker_client: docker.DockerClient, pgstandby_settings: Settings, moved_image: str
) -> None:
    networks: set[str] = set()
    volumes: set[str] = set()
    settings = replace(pgstandby_settings, version=None)  # this image, whatever the version
    with start_cluster(settings, backend="docker", image=moved_image) as cluster:
        names = [str(node.container_name()) for node in cluster.nodes]
        for node, container in zip(cluster.nodes, names, strict=True):
            assert node.query_value("SHOW data_directory") == PINNED
            mounted = _volumes(docker_client, container)
            assert "/var/lib/postgresql" in mounted, mounted  # the image's VOLUME is in effect
            networks.update(_networks(docker_client, container) - {"bridge"})
            volumes.update(mounted.values())
        assert_streaming(cluster.primary, cluster.standby)
        # the doctor agrees; and names a directory given for a server that runs elsewhere
        assert str(diagnose(cluster.primary, cluster.standby)[1]) == (
            f"ok      data directory: {'; '.join(f'{c} runs from {PINNED}' for c in names)}"
        )
        primary, standby = (Server(n.dsn, container=n.container_name()) for n in cluster.nodes)
        wrong = diagnose(primary, replace(standby, data_dir=MOVED))[1]
        assert (wrong.ok, wrong.evidence) == (
            False,
            f"{names[1]} runs from {PINNED}, not {MOVED}, the directory given for it, where "
            "the procedure wrote",
        )
        cluster.primary.execute("CREATE TABLE moved AS SELECT 18 AS layout")
        cluster.primary.wait_for_catchup(cluster.standby)
        assert cluster.standby.execute("SELECT layout FROM moved") == [(18,)]
        assert cluster.standby.file_exists("standby.signal")
    # the cluster's containers, its network and the image's anonymous volumes are gone
    assert set(names).isdisjoint(
        c.name for c in docker_client.containers.list(all=True, ignore_removed=True)
    )
    assert networks and networks.isdisjoint(n.name for n in docker_client.networks.list())
    assert volumes.isdisjoint(v.name for v in docker_client.volumes.list())


@pytest.mark.parametrize("pinned", [False, True], ids=["unpinned", "pinned"])
def test_lab_doctor_names_a_server_that_runs_off_the_procedures_directory(
    docker_client: docker.DockerClient, moved_image: str, pinned: bool
) -> None:
    pgdata = {} if pinned else {"PGSTANDBY_LAB_PGDATA": MOVED}
    with own_lab("pgstandby-pgdata", PGSTANDBY_IMAGE=moved_image, **pgdata) as lab:
        started = time.monotonic()
        up = lab.pgstandby("up")
        took = time.monotonic() - started
        doctor = lab.pgstandby("doctor")
        on_volume = run(["docker", "exec", lab.primary, "ls", "-A", PINNED], check=True).stdout
        if pinned:
            assert up.returncode == 0, up.stdout + up.stderr
            assert (
                f"ok      data directory: {lab.primary} runs from {PINNED}; "
                f"{lab.standby} runs from {PINNED}\n"
            ) in doctor.stdout, doctor.stdout
            assert doctor.returncode == 0, doctor.stdout
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
        # and the primary's whole cluster lives off the lab's volume, in the anonymous
        # volume of the image's VOLUME (a new one for each new container)
        assert on_volume.split() == [], f"the primary volume holds: {on_volume}"
        run(["docker", "exec", lab.primary, "test", "-s", f"{MOVED}/PG_VERSION"], check=True)
        mounted = _volumes(docker_client, lab.primary)
        assert mounted[PINNED] == f"{lab.project}_primary-data"
        assert not mounted["/var/lib/postgresql"].startswith(lab.project), mounted
        assert doctor.returncode == 1
        assert doctor.stdout.splitlines()[-1] == "first broken step: data directory"
        assert (
            f"BROKEN  data directory: {lab.primary} runs from {MOVED}; {lab.standby} does not "
            f"answer, and its environment sets PGDATA={MOVED}, not {PINNED} where the "
            "procedure writes (standby.signal, pg_hba.conf) and the lab keeps its volumes: the "
            "image moved PGDATA (postgres:18 uses /var/lib/postgresql/18/docker) and nothing "
            "pinned it\n"
            f"        fix: set PGDATA={PINNED} in the containers' environment "
            "(lab/docker-compose.yml pins it), then `pgstandby lab down` and `lab up`; or "
            "give the procedure that directory (PGSTANDBY_DATA_DIR)\n"
        ) in doctor.stdout, doctor.stdout
