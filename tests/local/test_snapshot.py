"""Snapshots: a documented-built cluster copied as files and started again with new ports.
A restored pair must be indistinguishable, to every assertion helper, from one the
scripts just built."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_pgstandby import (
    Cluster,
    ClusterSnapshot,
    Settings,
    assert_primary_conninfo,
    assert_streaming,
    start_cluster,
    take_snapshot,
    wait_for_catchup,
)
from pytest_pgstandby.backends.sessions import OWNER_MARK
from tests.helpers import passes_every_helper


@pytest.fixture(scope="module")
def built() -> Iterator[Cluster]:
    with start_cluster(Settings(backend="local")) as cluster:
        yield cluster


@pytest.fixture(scope="module")
def snapshot(built: Cluster) -> Iterator[ClusterSnapshot]:
    with take_snapshot(built) as snap:
        yield snap


def test_a_restored_pair_streams_and_passes_every_assertion_helper(
    built: Cluster, snapshot: ClusterSnapshot
) -> None:
    with snapshot.restore() as pair:
        primary, standby = pair.primary, pair.standby
        assert primary.port != built.primary.port and standby.port != built.standby.port
        # primary_conninfo among them: repointed at the restored primary
        passes_every_helper(primary, standby, "restored")
        conf = standby.read_file("postgresql.conf").rstrip().splitlines()[-1]
        assert conf == (
            f"primary_conninfo = 'host=127.0.0.1 port={primary.port} user=replicator "
            f"password={built.backend.replication_password}'"
        )


def test_a_restored_standby_shows_the_scripts_run_and_where_it_came_from(
    snapshot: ClusterSnapshot,
) -> None:
    with snapshot.restore() as pair:
        out = pair.standby.setup_output()
        assert out.count("Creating base backup...") == 1, out
        assert "pg_basebackup: base backup completed" in out
        assert f"restored from the snapshot {snapshot.saved.root}" in out
        assert "Replication role replicator is ready." in pair.primary.setup_output()


def test_restored_pairs_are_independent_of_each_other_and_of_the_source(
    built: Cluster, snapshot: ClusterSnapshot
) -> None:
    with snapshot.restore() as first:
        first.primary.execute("CREATE TABLE only_in_first (x int)")
        wait_for_catchup(first.primary, first.standby)
    with snapshot.restore() as second:
        missing = "SELECT to_regclass('only_in_first') IS NULL"
        assert second.primary.query_value(missing) is True
        assert second.standby.query_value(missing) is True
    assert built.primary.query_value(missing) is True
    assert_streaming(built.primary, built.standby)  # the source streams again after it


def test_a_cascade_with_slots_and_a_synchronous_standby_is_restored_with_its_shape() -> None:
    shape = Settings(backend="local", standbys=2, cascade=True, slots=True)
    with start_cluster(shape) as source, take_snapshot(source) as snap:
        first_root = snap.saved.root
        with snap.restore() as copy:
            primary, s1, s2 = copy.nodes
            fed = "SELECT application_name FROM pg_stat_replication"
            assert primary.execute(fed) == [("standby1",)]
            assert s1.execute(fed) == [("standby2",)]
            assert_primary_conninfo(s2, s1)
            assert primary.slot("standby1")["active"] and s1.slot("standby2")["active"]
            primary.execute("CREATE TABLE through_the_chain AS SELECT 1 AS x")
            wait_for_catchup(primary, s2)
            assert s2.execute("SELECT x FROM through_the_chain") == [(1,)]
        assert (first_root / OWNER_MARK).exists()  # swept like a session if we die
    assert not first_root.exists()  # close() removed it


def test_synchronous_standbys_stay_synchronous_after_a_restore() -> None:
    shape = Settings(backend="local", standbys=2, synchronous="ANY 1")
    with start_cluster(shape) as source, take_snapshot(source) as snap, snap.restore() as copy:
        rows = copy.primary.execute(
            "SELECT application_name, sync_state FROM pg_stat_replication ORDER BY 1"
        )
        assert rows == [("standby1", "quorum"), ("standby2", "quorum")]


def test_the_snapshot_lives_in_a_directory_the_harness_made(snapshot: ClusterSnapshot) -> None:
    root = snapshot.saved.root
    assert root.name.startswith("pgstandby-snapshot-")
    assert (root / OWNER_MARK).read_text().split()[0].isdigit()
    assert sorted(p.name for p in root.iterdir() if p.is_dir()) == ["primary", "standby1"]
    assert Path(root, "standby1", "standby.signal").exists()
