"""Assertion helpers on a Docker pair: files read through the container, and the primary
checked as the standby reaches it inside the Docker network (postgres-primary-lab:5432),
not as the test process does (127.0.0.1 and a published port)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from pytest_pgstandby import Cluster, Node
from pytest_pgstandby.assertions import (
    ReplicationAssertionError,
    Server,
    assert_primary_conninfo,
    assert_read_only,
    assert_replication_lag,
    assert_standby_signal,
    assert_streaming,
    poll_query_until,
    wait_for_catchup,
)

PRIMARY_ALIAS = "postgres-primary-lab"


def _container(node: Node) -> str:
    """The Docker container name of a docker-backend node."""
    return str(node.handle.wrapped.name)  # type: ignore[attr-defined]


def test_every_helper_passes_on_a_docker_pair(pair: Cluster) -> None:
    primary, standby = pair.primary, pair.standby
    assert_standby_signal(standby)
    conninfo = assert_primary_conninfo(standby, primary, user="replicator")
    assert (conninfo["host"], conninfo["port"]) == (PRIMARY_ALIAS, "5432")
    assert_read_only(standby)
    assert_streaming(primary, standby)
    lag = assert_replication_lag(primary, standby)
    assert lag.lag_seconds is not None and lag.lag_seconds < 2.0


def test_servers_named_by_container_read_files_through_docker(pair: Cluster) -> None:
    primary = Server(pair.primary.dsn, container=_container(pair.primary))
    standby = Server(pair.standby.dsn, container=_container(pair.standby))
    assert_standby_signal(standby)
    assert_primary_conninfo(standby, primary, user="replicator")
    assert_streaming(primary, standby)
    assert_replication_lag(primary, standby)
    assert_read_only(standby)
    pair.primary.execute("CREATE TABLE IF NOT EXISTS by_container AS SELECT 1 AS x")
    wait_for_catchup(primary, standby, timeout=30)
    poll_query_until(standby, "SELECT count(*) FROM by_container", 1, timeout=10)
    with pytest.raises(ReplicationAssertionError, match=r"standby\.signal is missing") as info:
        assert_standby_signal(primary)
    assert f"{_container(pair.primary)}:/var/lib/postgresql/data" in str(info.value)


def test_a_port_mismatch_lists_the_files_read_in_the_container(pair: Cluster) -> None:
    with pytest.raises(ReplicationAssertionError, match=r"port is '5432', expected '5433'") as info:
        assert_primary_conninfo(pair.standby, pair.primary, port=5433)
    text = str(info.value)
    assert "primary_conninfo is set in 2 places (the last one read wins):" in text
    assert "/var/lib/postgresql/data/postgresql.conf:" in text
    assert "/var/lib/postgresql/data/postgresql.auto.conf:" in text
    winner = next(line for line in text.splitlines() if line.endswith("<- wins"))
    assert "postgresql.auto.conf" in winner and f"host={PRIMARY_ALIAS}" in winner
    password = pair.standby.handle.credentials.password
    assert password and password not in text
    assert "replicator_password" not in text and "password=********" in text


def test_the_primary_as_the_host_sees_it_is_found_by_its_published_port(pair: Cluster) -> None:
    """A plain DSN carries no container; the standby's is known, and the one container
    beside it that publishes the DSN's port is the primary: compared as the standby
    reaches it (its alias, port 5432), not as 127.0.0.1:<published port>."""
    assert_primary_conninfo(pair.standby, pair.primary.dsn)
    with pytest.raises(ReplicationAssertionError, match="port is '5432', expected '5433'"):
        assert_primary_conninfo(pair.standby, pair.primary.dsn, port=5433)
    assert_primary_conninfo(pair.standby, pair.primary.dsn, host=PRIMARY_ALIAS, port=5432)


@pytest.mark.parametrize("command", ["check", "doctor"])
def test_the_check_and_doctor_commands_reach_the_pair_through_its_engine(
    pair: Cluster, command: str
) -> None:
    """`pgstandby check` / `doctor` on a harness pair, wherever its engine runs (a remote
    daemon, Podman, this process in a container): the DSNs as this process reaches the
    servers, the files read through the engine (DOCKER_HOST is inherited)."""
    pair.primary.execute("SELECT 1")
    out = subprocess.run(
        [sys.executable, "-m", "pytest_pgstandby.cli", command,
         "--primary", pair.primary.dsn, "--primary-container", _container(pair.primary),
         "--standby", pair.standby.dsn, "--standby-container", _container(pair.standby)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    last = out.stdout.strip().splitlines()[-1]
    assert last == (
        "5 passed, 0 failed"
        if command == "check"
        else "nothing broken: the standby streams as the procedure intends"
    ), out.stdout
    assert "started streaming WAL" in pair.standby.log()  # the log, through the engine
