"""No way in for another account on this machine. Local test servers listen on 127.0.0.1,
which every account reaches: a running local cluster must refuse a second account on
every node, by TCP (the superuser and the replication role need their random per-cluster
passwords; the seed's well-known replication password does not work) and by socket (the
socket directory is 0700). The same account given the password gets in: the refusals
are the passwords', not the network's.

Switching to a second account needs root: CI runs this as root.
"""

from __future__ import annotations

import os
import pwd
import stat
import subprocess
from collections.abc import Iterator

import pytest

from pytest_pgstandby import Cluster, Settings, start_cluster
from pytest_pgstandby.node import Node

OTHER = "nobody"  # an account that is neither the servers' nor the tests'


@pytest.fixture(scope="module")
def cluster(pgstandby_settings: Settings) -> Iterator[Cluster]:
    if os.geteuid() != 0:
        pytest.skip("acting as a second account needs root (CI runs this suite as root)")
    with start_cluster(pgstandby_settings, backend="local", standbys=2) as made:
        assert made.backend.account.name != OTHER
        yield made


def as_other(cluster: Cluster, conninfo: str, password: str | None = None) -> str:
    """psql as the other account, with no password file and no inherited groups; returns
    what it printed (its error, or the row)."""
    env = {"PATH": "/usr/bin:/bin", "HOME": "/nonexistent", "PGPASSFILE": "/dev/null"}
    env["PGCONNECT_TIMEOUT"] = "5"
    if password is not None:
        env["PGPASSWORD"] = password
    psql = cluster.backend.bins.path("psql")  # type: ignore[attr-defined]
    done = subprocess.run(
        [psql, "-X", "-A", "-t", "-d", conninfo, "-c", "SELECT current_user"],
        user=OTHER,
        group="nogroup",
        extra_groups=[],
        env=env,
        cwd="/",
        capture_output=True,
        text=True,
        timeout=30,
    )
    return (done.stdout + done.stderr).strip()


def tcp(node: Node, user: str, replication: bool = False) -> str:
    extra = " replication=true" if replication else ""
    return f"host=127.0.0.1 port={node.port} user={user} dbname=postgres{extra}"


def test_every_node_refuses_another_account_without_the_passwords(cluster: Cluster) -> None:
    for node in cluster.nodes:
        assert "no password supplied" in as_other(cluster, tcp(node, "postgres")), node.name
        assert "no password supplied" in as_other(cluster, tcp(node, "postgres", True))
        seed_password = "replicator_password"  # the seed's default, known to everyone
        for replication in (False, True):
            refused = as_other(cluster, tcp(node, "replicator", replication), seed_password)
            assert 'password authentication failed for user "replicator"' in refused, refused


def test_every_socket_is_out_of_reach_of_another_account(cluster: Cluster) -> None:
    sockets = cluster.backend.socket_dir  # type: ignore[attr-defined]
    mode = os.stat(sockets)
    assert stat.S_IMODE(mode.st_mode) == 0o700
    assert pwd.getpwuid(mode.st_uid).pw_name == cluster.backend.account.name  # type: ignore[attr-defined]
    for node in cluster.nodes:
        refused = as_other(cluster, f"host={sockets} port={node.port} user=postgres")
        assert "Permission denied" in refused, refused


def test_the_same_account_with_the_password_gets_in(cluster: Cluster) -> None:
    """The control: the refusals above come from the passwords, not the network."""
    password = cluster.backend.superuser_password  # type: ignore[attr-defined]
    for node in cluster.nodes:
        assert as_other(cluster, tcp(node, "postgres"), password) == "postgres", node.name
