"""Snapshots on Docker: a pair built by the scripts once, its data directories kept, and
new containers started on them for each test. A restored pair must be indistinguishable,
to every assertion helper, from one the scripts just built, and two restored pairs share
nothing but the files they started from."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from pytest_pgstandby import (
    Cluster,
    ClusterSnapshot,
    Settings,
    UnsupportedError,
    assert_primary_conninfo,
    assert_streaming,
    start_cluster,
    take_snapshot,
    wait_for_catchup,
)
from pytest_pgstandby.backends.docker import LABEL_CLUSTER
from tests.helpers import passes_every_helper


@pytest.fixture(scope="module")
def built(docker_client: Any, pgstandby_settings: Settings) -> Iterator[Cluster]:
    with start_cluster(pgstandby_settings, backend="docker", profile="documented") as cluster:
        yield cluster


@pytest.fixture(scope="module")
def snapshot(built: Cluster) -> Iterator[ClusterSnapshot]:
    with take_snapshot(built) as snap:
        yield snap


def _labelled(docker_client: Any, cluster: Cluster) -> dict[str, list[str]]:
    """What the daemon holds of one cluster, by our cluster label."""
    label = {"label": f"{LABEL_CLUSTER}={cluster.backend.cluster}"}  # type: ignore[attr-defined]
    return {
        "containers": [
            c.name
            for c in docker_client.containers.list(all=True, filters=label, ignore_removed=True)
        ],
        "networks": [n.name for n in docker_client.networks.list(filters=label)],
        "volumes": [v.name for v in docker_client.volumes.list(filters=label)],
    }


def test_a_restored_pair_streams_and_passes_every_assertion_helper(
    built: Cluster, snapshot: ClusterSnapshot
) -> None:
    built.primary.execute("CREATE TABLE IF NOT EXISTS after_snapshot AS SELECT 1 AS x")
    with snapshot.restore() as pair:
        primary, standby = pair.primary, pair.standby
        assert pair.backend.name == "docker"
        assert standby.handle.container_name() != built.standby.handle.container_name()
        passes_every_helper(primary, standby, "restored")
        # the files as the snapshot had them: what the original wrote later is not there
        assert primary.query_value("SELECT to_regclass('after_snapshot') IS NULL") is True
        ident = "SELECT system_identifier FROM pg_control_system()"
        assert primary.query_value(ident) == built.primary.query_value(ident)
        # the script's run, as it was for the original, and what happened since
        setup = standby.setup_output()
        assert "pg_basebackup" in setup or "base backup" in setup
        assert "restored from the snapshot" in setup
        assert "unpacked the snapshot's data directory" in standby.log()


def test_two_restored_pairs_share_no_port_network_volume_or_data(
    docker_client: Any, built: Cluster, snapshot: ClusterSnapshot
) -> None:
    with snapshot.restore() as one, snapshot.restore() as two:
        held = [_labelled(docker_client, c) for c in (built, one, two)]
        for kind in ("containers", "networks", "volumes"):
            names = [name for h in held for name in h[kind]]
            assert names and len(names) == len(set(names)), (kind, held)
        # where this process reaches each server: a published port, or (pytest in a
        # container joined to each network) the container's own address at 5432
        places = [(n.handle.host, n.port) for c in (built, one, two) for n in c.nodes]
        assert len(places) == len(set(places)) == 6
        one.primary.execute("CREATE TABLE only_in_one AS SELECT 1 AS x")
        wait_for_catchup(one.primary, one.standby)
        assert one.standby.query_value("SELECT to_regclass('only_in_one') IS NOT NULL") is True
        assert two.standby.query_value("SELECT to_regclass('only_in_one') IS NULL") is True
        assert_streaming(two.primary, two.standby)
        gone = [_labelled(docker_client, c) for c in (one, two)]
    assert [_labelled(docker_client, c) for c in (one, two)] == [
        {"containers": [], "networks": [], "volumes": []}
    ] * 2, gone
    assert_streaming(built.primary, built.standby)  # the original runs on, untouched


def test_a_cascade_with_slots_is_restored_in_its_shape(
    docker_client: Any, pgstandby_settings: Settings
) -> None:
    shape = {"standbys": 2, "cascade": True, "slots": True, "profile": "documented"}
    with (
        start_cluster(pgstandby_settings, backend="docker", **shape) as original,
        take_snapshot(original) as snap,
        snap.restore() as copy,
    ):
        first, second = copy.standbys
        assert copy.shape() == original.shape()
        assert_primary_conninfo(second, first)  # the cascade's alias, as the script wrote it
        for upstream, standby in ((copy.primary, first), (first, second)):
            assert_streaming(upstream, standby)
            assert upstream.query_value(
                "SELECT active FROM pg_replication_slots WHERE slot_name = %s",
                params=[standby.name],
            )
        copy.primary.execute("CREATE TABLE down_the_line AS SELECT 3 AS x")
        wait_for_catchup(copy.primary, second)
        assert second.execute("SELECT x FROM down_the_line") == [(3,)]


def test_a_restored_standby_reclones_by_the_script(snapshot: ClusterSnapshot) -> None:
    """A container restart of a copy runs setup-standby.sh as the original's would: a new
    base backup of its (restored) primary, not the archive again."""
    with snapshot.restore() as pair:
        pair.primary.execute("CREATE TABLE before_reclone AS SELECT 7 AS x")
        pair.standby.reclone()
        assert pair.standby.execute("SELECT x FROM before_reclone") == [(7,)]
        assert_streaming(pair.primary, pair.standby)
        assert "Primary is ready, creating standby from primary..." in (
            pair.standby.handle.all_output()  # type: ignore[attr-defined]
        )


def test_a_hardened_docker_cluster_is_not_snapshotted_and_says_why(
    pgstandby_settings: Settings, docker_client: Any
) -> None:
    with start_cluster(pgstandby_settings, backend="docker", profile="hardened") as cluster:
        with pytest.raises(UnsupportedError, match=r"passfile outside its data.*fresh='rebuild'"):
            take_snapshot(cluster)
        assert_streaming(cluster.primary, cluster.standby)  # untouched


def test_a_copy_paused_the_moment_it_is_handed_out_resumes(snapshot: ClusterSnapshot) -> None:
    """The keep flag's ``docker exec`` wait_ready leaves under way ends before a pause: a
    freeze that caught it starting wedged the container in the daemon (inspect, unpause
    and removal hung; the README's run hit it with copies made ahead)."""
    for _ in range(3):
        with snapshot.restore() as pair:
            pair.standby.pause()
            pair.standby.resume()
            assert_streaming(pair.primary, pair.standby)
