"""A Docker daemon elsewhere (issue 17): one reached over TCP in a network namespace of
its own, as a CI job reaches a `docker:dind` service. The harness finds it as
testcontainers does (DOCKER_HOST), publishes the servers' ports on the address the daemon
is reached by and on no other, connects there, says so in its description, and runs the
hardened profile there unless the documented one is asked for: the seed's trust lines must
not be an open door to other machines.

`tests/remote-daemon.sh` starts that daemon (`.ci/run` does, and exports
PGSTANDBY_REMOTE_DOCKER_HOST).
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import pytest_pgstandby
from pytest_pgstandby import PgStandbyError, Settings, start_cluster
from pytest_pgstandby.backends.containers import LABEL_CLUSTER, connect_docker
from pytest_pgstandby.backends.engines import engine_address

from .compose import own_lab

NETNS, NETNS_IP = "pgstandby-remote", "10.213.7.2"  # tests/remote-daemon.sh


@pytest.fixture
def remote(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    url = os.environ.get("PGSTANDBY_REMOTE_DOCKER_HOST")
    if not url and os.path.exists(f"/run/netns/{NETNS}"):
        # the script's namespace is there: its address is this project's own test host
        url = f"tcp://{NETNS_IP}:2375"
    if not url:
        if os.environ.get("PGSTANDBY_REQUIRE_DOCKER"):
            pytest.fail(
                "PGSTANDBY_REQUIRE_DOCKER is set but PGSTANDBY_REMOTE_DOCKER_HOST is not: "
                "start the remote daemon with `bash tests/remote-daemon.sh` (as .ci/run does)",
                pytrace=False,
            )
        pytest.skip("no remote daemon: `export PGSTANDBY_REMOTE_DOCKER_HOST=$(bash "
                    "tests/remote-daemon.sh)` starts one")  # fmt: skip
    monkeypatch.setenv("DOCKER_HOST", url)
    yield url


@pytest.fixture
def ssh_remote(remote: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The namespace's daemon over ssh:// (tests/ssh-daemon.sh: an sshd in the namespace
    and a `pgstandby-remote` host entry in ~/.ssh/config)."""
    url = os.environ.get("PGSTANDBY_SSH_DOCKER_HOST")
    if not url:
        if os.environ.get("PGSTANDBY_REQUIRE_DOCKER"):
            pytest.fail("PGSTANDBY_REQUIRE_DOCKER is set but PGSTANDBY_SSH_DOCKER_HOST is not: "
                        "`bash tests/ssh-daemon.sh` prints it", pytrace=False)  # fmt: skip
        pytest.skip("no ssh:// daemon: `export PGSTANDBY_SSH_DOCKER_HOST=$(bash "
                    "tests/ssh-daemon.sh)` starts one")  # fmt: skip
    monkeypatch.setenv("DOCKER_HOST", url)
    yield url


def test_an_ssh_daemon_is_reached_at_the_host_its_alias_names(
    ssh_remote: str, pgstandby_settings: Settings
) -> None:
    """ssh://pgstandby-remote: an alias of ~/.ssh/config. The servers are published on,
    and dialled at, the HostName ssh resolves it to (not the alias, which no resolver
    knows, and not every address), hardened by default."""
    address = engine_address()
    assert (address.url, address.how, address.host, address.publish_ip) == (
        ssh_remote,
        "DOCKER_HOST",
        NETNS_IP,
        NETNS_IP,
    )
    settings = pgstandby_settings.with_overrides(backend="docker", profile="auto")
    with start_cluster(settings, standbys=1, slots=False) as cluster:
        assert cluster.settings.profile == "hardened"
        assert _published(cluster.backend.cluster) == {NETNS_IP}  # type: ignore[attr-defined]
        primary, standby = cluster.primary, cluster.standby
        primary.execute("CREATE TABLE t AS SELECT 1 AS x")
        primary.wait_for_catchup(standby)
        assert standby.execute("SELECT x FROM t") == [(1,)]
        # exec through ssh: docker-py's ssh socket raised BrokenPipeError on every close
        assert standby.file_exists("standby.signal") and "streaming" in standby.log()
        standby.restart()
        primary.wait_for_catchup(standby)


def _published(cluster_label: str) -> set[str]:
    """The host addresses the cluster's containers publish 5432 on (asked of the daemon)."""
    client = connect_docker()
    try:
        found = set()
        labelled = {"label": f"{LABEL_CLUSTER}={cluster_label}"}
        for c in client.containers.list(filters=labelled, ignore_removed=True):
            for binding in c.attrs["NetworkSettings"]["Ports"].get("5432/tcp") or []:
                found.add(binding["HostIp"])
        return found
    finally:
        client.close()


def test_a_remote_daemon_is_reached_where_it_publishes_hardened_by_default(
    remote: str, pgstandby_settings: Settings
) -> None:
    address = engine_address()
    ip = remote.removeprefix("tcp://").split(":")[0]
    assert (address.url, address.how, address.host, address.publish_ip) == (
        remote,
        "DOCKER_HOST",
        ip,
        ip,
    )
    assert address.exposed
    settings = pgstandby_settings.with_overrides(backend="docker", profile="auto")
    with start_cluster(settings, standbys=1, slots=False) as cluster:
        backend = cluster.backend
        assert cluster.settings.profile == "hardened", "auto: hardened where others reach it"
        assert f"daemon {remote} (DOCKER_HOST); servers reached at {ip}" in cluster.describe()
        assert "which other machines reach; hardened profile" in cluster.describe()
        assert _published(backend.cluster) == {ip}  # type: ignore[attr-defined]
        primary, standby = cluster.primary, cluster.standby
        assert primary.host == ip and f"host={ip}" in primary.dsn
        # the trust lines were not appended: no password, no way in, from this machine
        primary.connect_fails("no password supplied", password=None, passfile="/dev/null")
        standby.connect_fails("no password supplied", password=None, passfile="/dev/null")
        assert "scram-sha-256" in standby.read_file("pg_hba.conf").splitlines()[-1]

        # the verbs, through the remote engine
        primary.execute("CREATE TABLE t AS SELECT 1 AS x")
        primary.wait_for_catchup(standby)
        assert standby.execute("SELECT x FROM t") == [(1,)]
        assert standby.file_exists("standby.signal") and "streaming" in standby.log()
        standby.partition()
        primary.execute("INSERT INTO t VALUES (2)")
        assert standby.execute("SELECT count(*) FROM t") == [(1,)], "cut off: nothing crosses"
        standby.heal()
        primary.wait_for_catchup(standby)
        standby.kill()
        standby.start()
        primary.wait_for_catchup(standby)
        standby.reclone()
        third = cluster.add_standby()
        primary.execute("INSERT INTO t VALUES (3)")
        primary.wait_for_catchup(third)
        assert third.execute("SELECT count(*) FROM t") == [(3,)]
        assert third.host == ip
    assert _published(backend.cluster) == set(), "its containers are gone"  # type: ignore[attr-defined]


def test_the_documented_profile_runs_remotely_only_when_asked(
    remote: str, pgstandby_settings: Settings
) -> None:
    settings = pgstandby_settings.with_overrides(backend="docker", profile="documented")
    with start_cluster(settings, standbys=1) as cluster:
        assert cluster.settings.profile == "documented"
        assert "documented profile" in cluster.describe()
        lines = cluster.standby.read_file("pg_hba.conf").splitlines()
        assert lines[-1].split() == ["host", "replication", "all", "0.0.0.0/0", "trust"]


def test_the_header_names_the_daemon_how_its_servers_are_reached_and_the_profile(
    remote: str, pytester: pytest.Pytester, lab_image: str
) -> None:
    ip = remote.removeprefix("tcp://").split(":")[0]
    pytester.makepyfile(test_nothing="def test_nothing():\n    pass\n")
    engine = (
        f"pgstandby: docker engine: daemon {remote} (DOCKER_HOST); servers reached at {ip}, "
        f"published on {ip} only, which other machines reach; "
    )
    for profile, says in (
        ("auto", "hardened profile (auto: other machines reach what is published here)"),
        ("documented", "documented profile, as asked (WARNING: trust lines where other"),
    ):
        result = pytester.runpytest_subprocess(
            "-p", "no:cacheprovider", "--pgstandby-backend=docker",
            f"--pgstandby-image={lab_image}", f"--pgstandby-profile={profile}",
        )  # fmt: skip
        result.assert_outcomes(passed=1)
        assert engine + says in result.stdout.str(), result.stdout.str()


JOB_TEST = """
from pytest_pgstandby.backends.containers import connect_docker


def test_in_a_job_container(pgstandby_cluster):
    cluster = pgstandby_cluster
    primary, standby = cluster.primary, cluster.standby
    print("DESCRIBE", cluster.describe())
    assert "which joined the cluster's network" in cluster.describe()
    assert primary.port == 5432 and not primary.host.startswith("127.")
    primary.execute("CREATE TABLE t AS SELECT 1 AS x")
    primary.wait_for_catchup(standby)
    assert standby.execute("SELECT x FROM t") == [(1,)]
    standby.partition()
    standby.heal()
    standby.kill()
    standby.start()
    primary.wait_for_catchup(standby)
    standby.reclone()
    primary.wait_for_catchup(standby)
    client = connect_docker()
    mine = {"label": "org.pgstandby.cluster=" + cluster.backend.cluster}
    for container in client.containers.list(filters=mine, ignore_removed=True):
        assert not container.attrs["NetworkSettings"]["Ports"].get("5432/tcp"), container.name
    client.close()
"""


def test_a_job_in_a_container_joins_the_cluster_network(
    docker_client: Any, lab_image: str, tmp_path: Path
) -> None:
    """pytest itself in a container of the same daemon, the daemon's socket mounted (a
    CI job run in a container): it joins each cluster's network and reaches the servers
    at their addresses there, with nothing published. The job container runs this very
    Python and checkout, mounted read-only at the same paths."""
    (tmp_path / "test_job.py").write_text(JOB_TEST)
    checkout = Path(pytest_pgstandby.__file__).resolve().parents[1]
    paths = {sys.prefix, sys.base_prefix, str(checkout)}
    volumes = {p: {"bind": p, "mode": "ro"} for p in paths}
    volumes[str(tmp_path)] = {"bind": "/job", "mode": "rw"}
    volumes["/var/run/docker.sock"] = {"bind": "/var/run/docker.sock", "mode": "rw"}
    job = docker_client.containers.run(
        lab_image,
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-s", "/job"],
        entrypoint=[],
        volumes=volumes,
        environment={
            "PGSTANDBY_BACKEND": "docker",
            "PGSTANDBY_IMAGE": lab_image,
            "PYTHONDONTWRITEBYTECODE": "1",
            "HOME": "/job",
        },
        working_dir="/job",
        labels={"org.pgstandby.test": "job"},
        detach=True,
    )
    try:
        status = job.wait(timeout=300)
        output = job.logs().decode(errors="replace")
    finally:
        job.remove(force=True, v=True)  # and its anonymous volume (the image's VOLUME)
    assert status["StatusCode"] == 0, output[-4000:]
    assert "1 passed" in output
    assert "this process runs in its container" in output


LAB_JOB = """
set -u
python -m pytest_pgstandby.cli lab check; echo "check exited $?"
python -m pytest_pgstandby.cli lab doctor; echo "doctor exited $?"
python -m pytest_pgstandby.cli lab up; echo "up exited $?"
"""


def test_lab_check_and_doctor_from_a_job_container(
    docker_client: Any, lab_image: str, tmp_path: Path
) -> None:
    """A classroom's CI grading the lab from a job in a container: the lab is up on the
    daemon's host; `lab check` and `lab doctor` in the container join the lab's network
    and reach its servers there (their ports are on the host's 127.0.0.1, not the
    container's). `lab up` from a container whose lab/ scripts the daemon cannot see (an
    installed package, not a checkout mounted at its own path) is refused, nothing made."""
    checkout = Path(pytest_pgstandby.__file__).resolve().parents[1]
    site = tmp_path / "site"  # the package as a wheel installs it: lab/ inside
    shutil.copytree(checkout / "pytest_pgstandby", site / "pytest_pgstandby")
    shutil.copytree(checkout / "lab", site / "pytest_pgstandby" / "lab")
    (tmp_path / "job.sh").write_text(LAB_JOB)
    docker_cli = shutil.which("docker")
    assert docker_cli, "the docker command (setup-host.sh installs docker.io)"
    volumes = {p: {"bind": p, "mode": "ro"} for p in {sys.prefix, sys.base_prefix}}
    volumes[str(tmp_path)] = {"bind": "/job", "mode": "ro"}
    volumes["/var/run/docker.sock"] = {"bind": "/var/run/docker.sock", "mode": "rw"}
    volumes[docker_cli] = {"bind": "/usr/local/bin/docker", "mode": "ro"}
    with own_lab("labjob") as lab:
        up = lab.pgstandby("up")
        assert up.returncode == 0, up.stdout + up.stderr + lab.logs()
        names = ("PGSTANDBY_LAB_", "POSTGRES_", "PGSTANDBY_IMAGE", "COMPOSE_PROJECT_NAME")
        env = {k: v for k, v in lab.env.items() if k.startswith(names)}
        job = docker_client.containers.run(
            lab_image,
            ["bash", "/job/job.sh"],
            entrypoint=[],
            volumes=volumes,
            environment={
                **env,
                "PATH": f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin",
                "PYTHONPATH": "/job/site",
                "PYTHONDONTWRITEBYTECODE": "1",
                "HOME": "/tmp",
            },
            labels={"org.pgstandby.test": "job"},
            detach=True,
        )
        try:
            job.wait(timeout=300)
            output = job.logs().decode(errors="replace")
        finally:
            job.remove(force=True, v=True)  # and out of the lab's network before `down`
        assert "5 passed, 0 failed\ncheck exited 0" in output, output
        assert "nothing broken: the standby streams" in output, output
        assert "doctor exited 0" in output, output
        assert "cannot bring the lab up from container" in output, output
        assert "-v $PWD:$PWD -w $PWD" in output and "up exited 2" in output, output
        check = lab.pgstandby("check")  # the lab as it was: nothing changed by the refusal
        assert check.returncode == 0, check.stdout + check.stderr


def test_lab_up_on_a_remote_daemon_is_refused_and_makes_nothing(remote: str) -> None:
    """The lab mounts its scripts from this machine and publishes its trust lines on the
    daemon host's 127.0.0.1: on a remote daemon `lab up` says so and makes nothing."""
    with own_lab("labremote") as lab:
        up = lab.pgstandby("up")
        assert up.returncode == 2, up.stdout + up.stderr
        assert f"the daemon is on another host (daemon {remote} (DOCKER_HOST)" in up.stderr
        assert "run `pgstandby lab ...` on the daemon's host" in up.stderr
        assert not lab.leftovers(), lab.leftovers()


POOL_TEST = """
from pytest_pgstandby import factories

pair = factories.cluster(scope="function", backend="docker", standbys=1)


def test_one(pair):
    pair.primary.execute("CREATE TABLE t AS SELECT 1 AS x")
    pair.primary.wait_for_catchup(pair.standby)
    assert pair.standby.execute("SELECT x FROM t") == [(1,)]


def test_two(pair):
    assert pair.standby.is_in_recovery()
"""


def test_a_pool_of_two_daemons_spreads_the_workers(
    remote: str, pytester: pytest.Pytester, lab_image: str
) -> None:
    """--pgstandby-docker-hosts: each xdist worker builds its clusters on one daemon of the
    pool, by its number; the summary names the daemon that ran each server."""
    local = "unix:///var/run/docker.sock"
    pytester.makepyfile(test_pool=POOL_TEST)
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-n", "2", "--dist", "each",
        f"--pgstandby-image={lab_image}", f"--pgstandby-docker-hosts={local},{remote}",
    )  # fmt: skip
    result.assert_outcomes(passed=4)
    out = result.stdout.str()
    pool = "pgstandby: a pool of 2 Docker daemons, one per xdist worker by its number"
    assert f"{pool}: {local}, {remote}" in out
    for daemon in (local, remote):
        assert re.search(
            rf"pgstandby: PostgreSQL 15\.\d+ .* on docker \({re.escape(lab_image)} at "
            rf"{re.escape(daemon)}\): 2 passed",
            out,
        ), out


def test_a_pool_daemon_without_the_image_or_an_answer_is_named_before_any_test(
    remote: str, pytester: pytest.Pytester, lab_image: str, docker_client: Any
) -> None:
    """Every daemon of the pool is asked before the first test: one without the image is
    named with the `docker save | docker load` that copies it from one that has it, one
    that does not answer is named too, and no test runs."""
    only_here = f"pgstandby-test/pool-only-here:{os.getpid()}"
    docker_client.images.get(lab_image).tag(only_here)
    local, silent = "unix:///var/run/docker.sock", "tcp://127.0.0.1:9"
    try:
        pytester.makepyfile(test_pool=POOL_TEST)
        result = pytester.runpytest_subprocess(
            "-p", "no:cacheprovider", "-n", "2", f"--pgstandby-image={only_here}",
            f"--pgstandby-docker-hosts={local},{remote},{silent}",
        )  # fmt: skip
    finally:
        docker_client.images.remove(only_here)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    err = result.stderr.str()
    assert "2 of the 3 Docker daemons of --pgstandby-docker-hosts cannot run the servers" in err
    assert (
        f"{remote}: image {only_here} is not there. Fix: `DOCKER_HOST={local} docker save "
        f"{only_here} | DOCKER_HOST={remote} docker load`"
    ) in err
    assert f"{silent}: no answer" in err
    assert "passed" not in result.stdout.str()


def test_servers_the_daemon_publishes_out_of_reach_are_named_in_seconds(
    remote: str, pgstandby_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """TC_HOST names an address where the daemon's ports are not (127.0.0.2: this
    machine's own loopback, where the namespace's daemon publishes nothing): the wait ends
    within seconds, saying which address was dialled, where the daemon is, and the fix."""
    monkeypatch.setenv("TC_HOST", "127.0.0.2")
    started = time.monotonic()
    with pytest.raises(PgStandbyError) as info:
        start_cluster(pgstandby_settings, backend="docker", standbys=1).__enter__()
    took = time.monotonic() - started
    message = str(info.value).splitlines()[0]
    assert took < 20, f"took {took:.1f}s: {message}"
    assert "server accepts connections in its container, but this process cannot" in message
    assert "reach it at 127.0.0.2:" in message and "Connection refused" in message, message
    assert f"daemon {remote} (DOCKER_HOST, reached as TC_HOST=127.0.0.2)" in message
    assert "Fix: TC_HOST (or TESTCONTAINERS_HOST_OVERRIDE) = the address where" in message
