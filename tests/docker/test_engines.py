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
from collections.abc import Iterator

import pytest

from pytest_pgstandby import Settings, start_cluster
from pytest_pgstandby.backends.containers import LABEL_CLUSTER, connect_docker, engine_address

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


def _published(cluster_label: str) -> set[str]:
    """The host addresses the cluster's containers publish 5432 on (asked of the daemon)."""
    client = connect_docker()
    try:
        found = set()
        labelled = {"label": f"{LABEL_CLUSTER}={cluster_label}"}
        for c in client.containers.list(filters=labelled):
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
