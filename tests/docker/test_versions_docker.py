"""The version matrix in containers: one downstream test run on PostgreSQL 13, 15 and 17,
each run naming the server that ran it, and the differences between versions where they
bite (a wrong major refused, PostgreSQL 13's md5 verifiers, images older than 12)."""

from __future__ import annotations

import re
import time
import uuid
from dataclasses import replace

import docker
import pytest

from pytest_pgstandby import (
    ImageMissingError,
    Settings,
    SetupFailedError,
    UnsupportedVersionError,
    VersionMismatchError,
    start_cluster,
)
from pytest_pgstandby.classroom.labctl import Lab
from tests.docker.compose import own_lab
from tests.docker.images import MATRIX, derived_image, ensure_images

pytestmark = pytest.mark.docker

DOWNSTREAM_CONFTEST = """
from pytest_pgstandby import factories

each_pg = factories.cluster(scope="module", versions=["13", "15", "17"], backend="docker")
one_pair = factories.cluster(scope="function", backend="docker")
"""

DOWNSTREAM_TEST = """
import pytest

def test_replicates(each_pg, request):
    asked = request.node.callspec.params["each_pg"]
    assert each_pg.primary.server_version_num() // 10000 == int(asked)
    each_pg.primary.execute("CREATE TABLE t AS SELECT 1 AS x")
    each_pg.primary.wait_for_catchup(each_pg.standby)
    assert each_pg.standby.execute("SELECT x FROM t") == [(1,)]
    assert each_pg.standby.file_exists("standby.signal")

@pytest.mark.pgstandby(version="13")
def test_marker_asks_for_13(one_pair):
    assert one_pair.standby.server_version_num() // 10000 == 13
"""


@pytest.fixture(scope="module")
def images(docker_client: docker.DockerClient) -> dict[str, str]:
    return ensure_images()


def test_a_downstream_suite_runs_one_test_on_each_version(
    pytester: pytest.Pytester, images: dict[str, str]
) -> None:
    pytester.makeconftest(DOWNSTREAM_CONFTEST)
    pytester.makepyfile(DOWNSTREAM_TEST)
    result = pytester.runpytest_subprocess(
        "-v", "-p", "no:cacheprovider", "--pgstandby-image", images["15"]
    )
    out = result.stdout.str()
    assert result.ret == 0, out
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines(
        [f"*test_replicates?pg{major}? PASSED*" for major in MATRIX]
        + ["*test_marker_asks_for_13 PASSED*"]
    )
    # the summary names each server as it printed its version, and what ran on it
    for major, count in (("13", 2), ("15", 1), ("17", 1)):
        line = (
            rf"pgstandby: PostgreSQL {major}\.\d+ \(Debian [^)]+\) on docker "
            rf"\(pgstandby/postgres:{major}\): {count} passed"
        )
        assert re.search(line, out), f"no line {line!r} in:\n{out}"


def test_an_image_of_another_major_is_refused_before_any_container(
    docker_client: docker.DockerClient, pgstandby_settings: Settings, images: dict[str, str]
) -> None:
    """A tag that says 13 on an image that holds 15: its labels give it away."""
    # a layer of its own: the ancestor filter below must not match the 15 image's containers
    label = "LABEL org.pgstandby.test=mislabelled"
    with derived_image(docker_client, images["15"], label, tag="13") as mislabelled:
        asked = replace(pgstandby_settings, image=mislabelled, version=None)
        with pytest.raises(VersionMismatchError) as info:
            start_cluster(asked, backend="docker", version="13").__enter__()
        assert not docker_client.containers.list(
            all=True, filters={"ancestor": mislabelled}, ignore_removed=True
        )
    assert str(info.value) == (
        f"version=13 was asked, but image {mislabelled} holds PostgreSQL 15 (its labels/"
        "PG_MAJOR say so); no container was started. Fix: `pgstandby image build --pg 13 "
        "--force` to remake that tag, or drop --pgstandby-version to run the image as it is."
    )


def test_an_unlabelled_image_of_another_major_is_named_once_its_server_answers(
    docker_client: docker.DockerClient, pgstandby_settings: Settings, images: dict[str, str]
) -> None:
    """No label, no PG_MAJOR: the server's own server_version_num tells, and the cluster is
    removed, not handed to a test that believes it runs 13."""
    unlabelled = ('LABEL org.pgstandby.pg-major=""', "ENV PG_MAJOR=")
    with derived_image(docker_client, images["15"], *unlabelled, tag="13") as mislabelled:
        with pytest.raises(VersionMismatchError) as info:
            start_cluster(
                replace(pgstandby_settings, image=mislabelled, version=None),
                backend="docker",
                version="13",
            ).__enter__()
        left = docker_client.containers.list(
            all=True, filters={"ancestor": mislabelled}, ignore_removed=True
        )
    message = str(info.value)
    assert re.match(
        r"version=13 was asked, but the primary runs PostgreSQL 15\.\d+ \(Debian [^)]+\) "
        rf"\(docker: image {re.escape(mislabelled)}, network pgstandby-\w+, daemon .+; "
        r"documented profile\)\. Fix: rebuild "
        r"or retag the image \(`pgstandby image build --pg 13 --force`\)",
        message,
    ), message
    assert left == []


def test_an_image_older_than_12_is_refused_before_any_container(
    docker_client: docker.DockerClient, pgstandby_settings: Settings, images: dict[str, str]
) -> None:
    """What an image of PostgreSQL 11 says of itself (the official images set PG_MAJOR):
    refused from its metadata, since standby.signal came with 12."""
    eleven = ("LABEL org.pgstandby.pg-major=11", "ENV PG_MAJOR=11")
    with derived_image(docker_client, images["15"], *eleven) as tag:
        with pytest.raises(UnsupportedVersionError) as info:
            start_cluster(
                replace(pgstandby_settings, version=None), backend="docker", image=tag
            ).__enter__()
        assert not docker_client.containers.list(
            all=True, filters={"ancestor": tag}, ignore_removed=True
        )
    assert str(info.value).startswith(
        f"image {tag} holds PostgreSQL 11 (its labels/PG_MAJOR say so), older than 12: the "
        "documented procedure writes standby.signal and primary_conninfo, which PostgreSQL "
        "reads from 12 on (recovery.conf before); no container was started. Fix:"
    )


def _verifier(cluster_settings: Settings, **overrides: str) -> tuple[str, bool]:
    with start_cluster(cluster_settings, backend="docker", version="13", **overrides) as c:
        stored = c.primary.query_value(
            "SELECT left(rolpassword, 13) FROM pg_authid WHERE rolname = 'replicator'"
        )
        c.primary.execute("CREATE TABLE v AS SELECT 13 AS major")
        c.primary.wait_for_catchup(c.standby)
        return str(stored), c.standby.execute("SELECT major FROM v") == [(13,)]


def test_postgresql_13_stores_md5_and_the_hardened_profile_asks_for_scram(
    pgstandby_settings: Settings, images: dict[str, str]
) -> None:
    """13's password_encryption is md5: the documented md5 line works with it, but a
    scram-sha-256 line (hardened) cannot check an md5 verifier. The hardened profile hands
    setup-primary.sh PGSTANDBY_PASSWORD_ENCRYPTION=scram-sha-256 (a value, not a step)."""
    stored, replicated = _verifier(pgstandby_settings)
    assert stored.startswith("md5") and replicated
    stored, replicated = _verifier(pgstandby_settings, profile="hardened")
    assert stored == "SCRAM-SHA-256" and replicated


def test_the_lab_runs_on_13_and_refuses_17_over_its_volume(
    docker_client: docker.DockerClient, images: dict[str, str]
) -> None:
    """The classroom lab (the seed's procedure as compose runs it) on 13; then `lab up
    --image` of 17 over it: the volume keeps a 13 data directory that 17 cannot read.
    Refused before compose touches anything; and if compose is run by hand anyway, the
    wait stops at once on the primary that exited, with its own words."""
    with own_lab("pgstandby-v", PGSTANDBY_IMAGE=images["13"]) as lab:
        up = lab.pgstandby("up")
        assert up.returncode == 0, up.stdout + up.stderr
        check = lab.pgstandby("check")
        assert check.stdout.rstrip().endswith("5 passed, 0 failed"), check.stdout
        again = lab.pgstandby("up", "--image", images["17"])
        assert again.returncode == 2
        assert again.stderr == (
            "pgstandby: error: the lab's primary keeps a PostgreSQL 13 data directory (its "
            f"volume {lab.project}_primary-data), which {images['17']} (PostgreSQL 17) cannot "
            "read; nothing was changed. Fix: `pgstandby lab down` (removes the lab's "
            f"containers and volumes, and its data), then `pgstandby lab up --image "
            f"{images['17']}`; or keep a PostgreSQL 13 image.\n"
        )
        with lab.connect(lab.primary_port) as conn:  # untouched: still 13, still serving
            assert conn.execute("SHOW server_version_num").fetchone()[0].startswith("13")
        lab.env["PGSTANDBY_IMAGE"] = images["17"]
        lab.run("up", "-d", check=True)  # what the preflight prevents, done by hand
        started = time.monotonic()
        with pytest.raises(SetupFailedError) as info:
            Lab(lab.env).wait(120)
        assert time.monotonic() - started < 30, "said when the primary exited, not at 120 s"
        assert f"the lab's primary ({lab.primary}) has exited; its log ends:" in str(info.value)
        assert "database files are incompatible with server" in str(info.value)


def test_a_version_of_an_official_style_image_that_is_not_here_names_its_build(
    docker_client: docker.DockerClient, pgstandby_settings: Settings
) -> None:
    """A downstream project without our ini runs postgres:17 (the default), so version=13
    asks for postgres:13, which no registry gives here: the fix names the 13 build. (A
    repository of our own, named like the official one, is surely absent.)"""
    absent = f"pgstandby-test-{uuid.uuid4().hex[:8]}/postgres"
    settings = replace(pgstandby_settings, image=f"{absent}:17", version="13")
    with pytest.raises(ImageMissingError) as info:
        start_cluster(settings, backend="docker").__enter__()
    assert str(info.value) == (
        f"image {absent}:13 is not in the local Docker engine, and pytest-pgstandby does not "
        "pull. Fix: `pgstandby image build --pg 13` (then --pgstandby-image=pgstandby/postgres:"
        f"13), or `docker pull {absent}:13` where a registry is reachable, or pick another "
        "with --pgstandby-image / PGSTANDBY_IMAGE."
    )
