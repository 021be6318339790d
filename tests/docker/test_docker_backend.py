"""Docker backend specifics: seed defaults inside the containers, 127.0.0.1-only ports,
node control through the container, cleanup without Ryuk, and bad input."""

from __future__ import annotations

import gc
import os
import pwd
import signal
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import docker.api.client
import docker.models.containers
import psycopg
import pytest
from testcontainers.core.config import testcontainers_config

from pytest_pgstandby import (
    DockerUnavailableError,
    ImageMissingError,
    NameClashError,
    Settings,
    start_cluster,
)
from pytest_pgstandby.backends import engines
from pytest_pgstandby.backends.docker import LABEL, LABEL_CLUSTER, DockerBackend, connect_docker
from pytest_pgstandby.backends.docker_node import OneArchiveContainer
from tests.helpers import reapers_of, wait_for_child_file


def _ours(client, cluster: str | None = None) -> tuple[list, list]:  # type: ignore[no-untyped-def]
    label = f"{LABEL_CLUSTER}={cluster}" if cluster else f"{LABEL}=1"
    return (
        client.containers.list(all=True, filters={"label": label}, ignore_removed=True),
        client.networks.list(filters={"label": label}),
    )


def test_standby_runs_the_seed_defaults_and_ports_are_loopback_only(pair, docker_client) -> None:  # type: ignore[no-untyped-def]
    auto = pair.standby.read_file("postgresql.auto.conf")
    assert "host=''postgres-primary-lab'' port=5432" in auto
    conf = pair.standby.read_file("postgresql.conf").rstrip().splitlines()[-1]
    assert conf.startswith("primary_conninfo = 'host=postgres-primary-lab port=5432 ")
    for node in pair.nodes:
        attrs = docker_client.containers.get(node.handle.wrapped.id).attrs
        bindings = attrs["NetworkSettings"]["Ports"]["5432/tcp"]
        assert {b["HostIp"] for b in bindings} == {"127.0.0.1"}
        assert node.host == "127.0.0.1"
    aliases = docker_client.containers.get(pair.primary.handle.wrapped.id).attrs["NetworkSettings"][
        "Networks"
    ]
    assert any("postgres-primary-lab" in (n.get("Aliases") or []) for n in aliases.values())


def test_a_primary_from_the_template_wants_the_password_the_harness_chose(pair) -> None:  # type: ignore[no-untyped-def]
    """The image's initdb template has no superuser password; primary-init.sh sets the
    harness's, and the `host all all all scram-sha-256` line of the entrypoint asks for it."""
    assert "unpacking the initdb template" in pair.primary.setup_output()
    params = psycopg.conninfo.conninfo_to_dict(pair.primary.dsn)
    assert len(str(params["password"])) >= 16
    params["password"] = "not-" + str(params["password"])
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(psycopg.conninfo.make_conninfo(**params), connect_timeout=5).close()
    hba = pair.primary.execute(
        "SELECT type, database, user_name, auth_method FROM pg_hba_file_rules"
    )
    # the official entrypoint's default: md5 up to 13, scram-sha-256 from 14 (as
    # password_encryption's default)
    method = "scram-sha-256" if pair.primary.server_version_num() >= 140000 else "md5"
    assert ("host", ["all"], ["all"], method) in hba


def test_stop_start_and_kill_through_the_container(
    pgstandby_settings: Settings, docker_client
) -> None:  # type: ignore[no-untyped-def]
    with start_cluster(pgstandby_settings, backend="docker") as cluster:
        primary, standby = cluster.primary, cluster.standby
        primary.execute("CREATE TABLE before_restart AS SELECT 7 AS x")
        assert standby.is_running()  # it answers libpq's ping: no docker exec asked
        standby.pause()  # the container paused: not running, and no ping hangs on it
        assert not standby.is_running()
        standby.resume()
        standby.kill()  # SIGKILL of the postmaster: the container and its data stay
        assert not standby.is_running()
        assert standby.handle.status() == "running"  # type: ignore[attr-defined]
        standby.start()
        assert standby.setup_output().count("Creating base backup...") == 1
        primary.wait_for_catchup(standby)
        assert standby.execute("SELECT x FROM before_restart") == [(7,)]
        primary.kill()
        assert not primary.is_running()
        primary.start()
        assert primary.execute("SELECT x FROM before_restart") == [(7,)]
        name = cluster.backend.cluster
    assert _ours(docker_client, name) == ([], [])


def test_missing_image_names_the_build_command(docker_client) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ImageMissingError, match=r"pgstandby image build"):
        DockerBackend("pgstandby/postgres:does-not-exist")


def test_no_daemon_names_how_to_start_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    with pytest.raises(DockerUnavailableError, match=r"no Docker daemon answers.*dockerd"):
        DockerBackend("pgstandby/postgres:15")


def test_a_socket_that_refuses_the_account_is_named_with_the_group_not_start_dockerd(
    docker_client, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    """Issue 20 #10: an account without Docker access was told that no daemon answers and
    to start dockerd. Run as root: a forked child drops to ``nobody`` (no groups) and asks
    the daemon's own socket."""
    if os.geteuid() != 0:
        pytest.fail("switching to another account needs root; the Docker suite runs as root")
    socket_path = "/var/run/docker.sock"
    if not os.path.exists(socket_path):
        pytest.fail(f"this test asks the daemon's socket at {socket_path}, which is absent")
    monkeypatch.setenv("DOCKER_HOST", f"unix://{socket_path}")
    reader, writer = os.pipe()
    child = os.fork()
    if child == 0:  # the child: never returns into pytest
        try:
            os.close(reader)
            os.setgroups([])
            os.setgid(pwd.getpwnam("nobody").pw_gid)
            os.setuid(pwd.getpwnam("nobody").pw_uid)
            # as a process of that account starts: no API version negotiated yet (with
            # root's, docker-py would not ask the socket before testcontainers reads its
            # own metadata in root's site-packages, which nobody may not)
            engines._API_VERSIONS.clear()
            try:
                connect_docker(timeout=5)
                said = "connected"
            except DockerUnavailableError as exc:
                said = str(exc)
            os.write(writer, said.encode())
        finally:
            os._exit(0)
    os.close(writer)
    with os.fdopen(reader) as got:
        said = got.read()
    os.waitpid(child, 0)
    assert said.startswith(f"the Docker daemon's socket {socket_path} refuses the account "), said
    assert "'nobody' (permission denied; the socket is root:" in said, said
    assert "Fix: add the account to the" in said and "usermod -aG" in said, said
    assert "dockerd &" not in said, said


def test_name_clash_with_a_foreign_container_is_refused_untouched(
    docker_client, pgstandby_settings: Settings
) -> None:  # type: ignore[no-untyped-def]
    foreign = docker_client.containers.create(
        pgstandby_settings.docker_image, name="pgstandby-clashtest-primary", command=["true"]
    )
    try:
        with pytest.raises(NameClashError, match=r"not ours.*left untouched"):
            DockerBackend(pgstandby_settings.docker_image, cluster_name="clashtest")
        foreign.reload()
        assert foreign.status == "created"
    finally:
        foreign.remove(force=True, v=True)  # the test made it (and its volume), it removes it
    assert _ours(docker_client, "clashtest") == ([], [])


def test_leftovers_of_a_killed_pytest_are_swept_at_the_next_start(
    docker_client, pgstandby_settings: Settings, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    ready = tmp_path / "ready"
    script = textwrap.dedent(
        f"""
        import pathlib, time
        from pytest_pgstandby.backends.docker import DockerBackend
        backend = DockerBackend({pgstandby_settings.docker_image!r})
        primary = backend.create_primary("primary")
        primary.container  # its creation runs beside the caller: wait for it
        pathlib.Path({str(ready)!r}).write_text(backend.cluster)
        time.sleep(600)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script])
    try:
        cluster = wait_for_child_file(ready, proc, timeout=120)
        # the sweep is the fallback for when the reaper is gone too: kill it first
        for reaper in reapers_of(proc.pid):
            os.kill(reaper, signal.SIGKILL)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        containers, networks = _ours(docker_client, cluster)
        assert len(containers) == 1 and len(networks) == 1  # left behind by the dead child
        DockerBackend(pgstandby_settings.docker_image).close()  # the next start sweeps
        assert _ours(docker_client, cluster) == ([], [])
    finally:
        if proc.poll() is None:
            proc.kill()


def test_two_standbys_stream_under_their_own_aliases(
    pgstandby_settings: Settings, docker_client
) -> None:  # type: ignore[no-untyped-def]
    with start_cluster(pgstandby_settings, backend="docker", standbys=2) as cluster:
        cluster.primary.execute("CREATE TABLE two AS SELECT 2 AS x")
        aliases = []
        for standby in cluster.standbys:
            cluster.primary.wait_for_catchup(standby)
            assert standby.execute("SELECT x FROM two") == [(2,)]
            networks = docker_client.containers.get(standby.handle.wrapped.id).attrs[
                "NetworkSettings"
            ]["Networks"]
            aliases += [a for n in networks.values() for a in n.get("Aliases") or []]
        assert {"postgres-standby-lab", "postgres-standby-lab-2"} <= set(aliases)
        assert (
            cluster.primary.query_value(
                "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'"
            )
            == 2
        )


def test_lab_up_refuses_a_missing_image_naming_the_build_command(docker_client) -> None:  # type: ignore[no-untyped-def]
    project = f"pgstandby-refusal-{os.getpid()}"  # not the classroom lab's project
    result = subprocess.run(
        [sys.executable, "-m", "pytest_pgstandby.cli", "lab", "up", "--image", "pgstandby/x:0"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "COMPOSE_PROJECT_NAME": project},
    )
    assert result.returncode == 2
    assert "image pgstandby/x:0 is not present" in result.stderr
    assert "pgstandby image build --pg 15" in result.stderr
    # nothing was created under the compose project `lab up` would have used
    filters = {"label": f"com.docker.compose.project={project}"}
    assert docker_client.containers.list(all=True, filters=filters, ignore_removed=True) == []


def test_clusters_one_after_another_hold_no_more_file_descriptors(
    docker_client, pgstandby_settings: Settings
) -> None:  # type: ignore[no-untyped-def]
    """testcontainers gives each container and network a docker-py client of its own:
    close() closes them, so a process making cluster after cluster (a long session) keeps
    a flat count of open descriptors, without waiting for a garbage collection."""
    gc.disable()  # what a collection would free must not hide a leak
    try:
        counts = []
        for _ in range(6):
            with start_cluster(pgstandby_settings, backend="docker") as cluster:
                cluster.primary.execute("SELECT 1")
            counts.append(len(os.listdir("/proc/self/fd")))
    finally:
        gc.enable()
    # the first cluster opens what lives for the session (the reaper's pipe, a client)
    assert counts[-1] - counts[1] <= 2, f"open descriptors after each cluster: {counts}"


def test_a_nodes_files_go_in_with_one_put_archive(docker_client, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Each put_archive costs the daemon ~60 ms: a node's three to five files go in with
    one, each at its path with its mode and content."""
    calls: list[str] = []
    real = docker.models.containers.Container.put_archive

    def counted(self, path, data):  # type: ignore[no-untyped-def]
        if self.name == name:  # not a warm kit's, made meanwhile in the background
            calls.append(path)
        return real(self, path, data)

    monkeypatch.setattr(docker.models.containers.Container, "put_archive", counted)
    monkeypatch.setattr(testcontainers_config, "ryuk_disabled", True)  # as DockerBackend does
    files = {"/pgstandby-a.sh": (b"echo a\n", 0o755), "/tmp/b.conf": (b"b = 1\n", 0o600),
             "/docker-entrypoint-initdb.d/c.sh": (b"#!/bin/sh\n" * 50, 0o644)}  # fmt: skip
    container = OneArchiveContainer("pgstandby/postgres:15").with_command("sleep 60")
    name = f"pgstandby-test-archive-{uuid.uuid4().hex[:8]}"
    container = container.with_name(name)
    for path, (content, mode) in files.items():
        container = container.with_copy_into_container(content, path, mode)
    container.start()
    try:
        assert calls == ["/"]
        wrapped = container.get_wrapped_container()
        for path, (content, mode) in files.items():
            code, out = wrapped.exec_run(["stat", "-c", "%a %s", path])
            assert (code, out.decode().split()) == (0, [f"{mode:o}", str(len(content))]), path
            assert wrapped.exec_run(["cat", path]).output == content
    finally:
        container.get_wrapped_container().remove(force=True, v=True)  # the image's VOLUME


def test_a_cluster_asks_the_daemons_api_version_once_per_process(
    docker_client, make_cluster, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    """docker-py asks GET /version at every client it makes, which takes Podman ~0.5 s, and
    a cluster makes one per network and per node: the version this process negotiated
    (the docker_client fixture's connection) is given to each instead."""
    asked: list[str] = []
    real = docker.api.client.APIClient._retrieve_server_version

    def counted(self):  # type: ignore[no-untyped-def]
        asked.append(self.base_url)
        return real(self)

    monkeypatch.setattr(docker.api.client.APIClient, "_retrieve_server_version", counted)
    with make_cluster(standbys=1) as cluster:
        cluster.primary.execute("CREATE TABLE asked AS SELECT 1 AS x")
        cluster.primary.wait_for_catchup(cluster.standby)
    assert asked == []
