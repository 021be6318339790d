"""Replication scenarios every backend must show, each on a cluster of its own, in the
vocabulary of PostgreSQL's Cluster.pm. Imported by tests/local and tests/docker, each of
which provides ``make_cluster(**settings)`` (a context manager) for its backend.

docs/scenarios.md shows each as code a user can copy.
"""

from __future__ import annotations

import itertools
import logging
import threading
import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

import psycopg
import pytest

from pytest_pgstandby import (
    Cluster,
    Node,
    PgStandbyError,
    ReplicationAssertionError,
    assert_replication_lag,
)

MakeCluster = Callable[..., AbstractContextManager[Cluster]]


def _table() -> str:
    return f"t_{uuid.uuid4().hex[:8]}"


def test_primary_killed_then_promote_and_follow(make_cluster: MakeCluster) -> None:
    with make_cluster(standbys=2) as cluster:
        primary, standby1, standby2 = cluster.primary, *cluster.standbys
        table = _table()
        primary.execute(f"CREATE TABLE {table} AS SELECT 1 AS id")
        for standby in cluster.standbys:
            primary.wait_for_catchup(standby)
        timeline = standby1.timeline()

        primary.kill()
        # the standby still serves reads, stays read-only, and streams from nobody
        assert standby1.execute(f"SELECT count(*) FROM {table}") == [(1,)]
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            standby1.execute(f"INSERT INTO {table} VALUES (2)")
        standby1.poll_query_until(
            "SELECT count(*) FROM pg_stat_wal_receiver WHERE status = 'streaming'", 0
        )

        standby1.promote()
        assert standby1.timeline() == timeline + 1
        standby1.execute(f"INSERT INTO {table} VALUES (2)")
        standby2.follow(standby1)
        standby1.wait_for_catchup(standby2)
        assert standby2.execute(f"SELECT count(*) FROM {table}") == [(2,)]
        assert standby2.timeline() == timeline + 1
        assert standby2.is_in_recovery()


def _commit_in_thread(node: Node, sql: str) -> tuple[threading.Thread, dict[str, Any]]:
    """Run ``sql`` (autocommit: its commit waits for synchronous standbys) in a thread;
    the result dict gets the backend pid, the notices, and "done"."""
    result: dict[str, Any] = {"notices": []}
    started = threading.Event()

    def run() -> None:
        with node.connect() as conn:
            conn.add_notice_handler(lambda d: result["notices"].append(d.message_primary))
            result["pid"] = conn.info.backend_pid
            started.set()
            conn.execute(sql.encode())
            result["done"] = True

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert started.wait(30), "the committing session did not connect"
    return thread, result


def test_a_synchronous_commit_waits_for_its_paused_standby(make_cluster: MakeCluster) -> None:
    with make_cluster(standbys=1) as cluster:
        primary = cluster.primary
        standby = cluster.add_standby(synchronous=True)  # standby1 stays asynchronous
        assert primary.execute(
            "SELECT application_name, sync_state FROM pg_stat_replication ORDER BY 1"
        ) == [("standby1", "async"), ("standby2", "sync")]
        table = _table()
        primary.execute(f"CREATE TABLE {table} (id int)")  # returns: the standby answers
        standby.pause()
        try:
            thread, result = _commit_in_thread(primary, f"INSERT INTO {table} VALUES (1)")
            # the commit is waiting for the standby, as PostgreSQL itself says
            primary.poll_query_until(
                "SELECT wait_event FROM pg_stat_activity WHERE pid = %s",
                "SyncRep",
                params=[result["pid"]],
            )
            assert "done" not in result
            primary.execute("SELECT pg_cancel_backend(%s)", [result["pid"]])
            thread.join(cluster.settings.timeout)
            assert result.get("done"), "the cancelled commit did not return"
            assert any(
                "canceling wait for synchronous replication" in n for n in result["notices"]
            ), result["notices"]
        finally:
            standby.resume()
        thread, result = _commit_in_thread(primary, f"INSERT INTO {table} VALUES (2)")
        thread.join(cluster.settings.timeout)
        assert result.get("done"), "with the standby back, a commit returns"
        primary.wait_for_catchup(standby)
        assert standby.execute(f"SELECT count(*) FROM {table}") == [(2,)]


def test_any_one_of_two_does_not_wait_for_a_paused_standby(make_cluster: MakeCluster) -> None:
    with make_cluster(standbys=2, synchronous="ANY 1") as cluster:
        primary, standby1, standby2 = cluster.primary, *cluster.standbys
        states = primary.execute(
            "SELECT application_name, sync_state FROM pg_stat_replication ORDER BY 1"
        )
        assert states == [("standby1", "quorum"), ("standby2", "quorum")]
        table = _table()
        primary.execute(f"CREATE TABLE {table} (id int)")
        standby1.pause()
        try:
            thread, result = _commit_in_thread(primary, f"INSERT INTO {table} VALUES (1)")
            thread.join(cluster.settings.timeout)
            assert result.get("done"), "ANY 1 of two: the other standby answers"
            primary.wait_for_catchup(standby2)
            assert standby2.execute(f"SELECT count(*) FROM {table}") == [(1,)]
        finally:
            standby1.resume()


def test_a_cascade_of_three_feeds_each_node_from_the_one_before(
    make_cluster: MakeCluster,
) -> None:
    with make_cluster(standbys=3, cascade=True) as cluster:
        chain = cluster.nodes
        table = _table()
        chain[0].execute(f"CREATE TABLE {table} AS SELECT 42 AS answer")
        for upstream, downstream in itertools.pairwise(chain):
            upstream.wait_for_catchup(downstream)
            fed = upstream.execute(
                "SELECT application_name FROM pg_stat_replication WHERE state = 'streaming'"
            )
            assert fed == [(downstream.name,)], f"{upstream.name} feeds {fed}"
        assert chain[-1].execute(f"SELECT answer FROM {table}") == [(42,)]


def test_slots_are_used_and_dropped_at_teardown(
    make_cluster: MakeCluster, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="pytest_pgstandby.cluster")
    with make_cluster(standbys=2, slots=True) as cluster:
        primary, standby1, _ = cluster.primary, *cluster.standbys
        for standby in cluster.standbys:
            slot = primary.slot(standby.name)
            assert slot is not None and slot["active"] and slot["slot_type"] == "physical"
            received = standby.query_value("SELECT slot_name FROM pg_stat_wal_receiver")
            assert received == standby.name
        cluster.remove_standby(standby1)  # stopped, and its slot dropped on the primary
        assert primary.slot("standby1") is None
        assert [
            row[0] for row in primary.execute("SELECT slot_name FROM pg_replication_slots")
        ] == ["standby2"]
    # teardown dropped the last one on the real server before removing it
    dropped = [r.getMessage() for r in caplog.records if "replication slot" in r.getMessage()]
    assert dropped == [
        "dropped replication slot standby1 on primary",
        "dropped replication slot standby2 on primary",
    ]


def test_a_partition_grows_the_lag_and_heal_catches_up(make_cluster: MakeCluster) -> None:
    with make_cluster(standbys=1) as cluster:
        primary, standby = cluster.primary, cluster.standby
        table = _table()
        primary.execute(f"CREATE TABLE {table} (id int)")
        primary.wait_for_catchup(standby)

        standby.partition()
        primary.execute(f"INSERT INTO {table} SELECT generate_series(1, 20000)")
        with pytest.raises(ReplicationAssertionError, match="measured lag >") as info:
            assert_replication_lag(primary, standby, max_seconds=0.5)
        byte_line = next(line for line in str(info.value).splitlines() if "byte lag:" in line)
        lag_bytes = int(byte_line.split("byte lag: ")[1].split()[0])
        assert lag_bytes > 100_000, byte_line
        # cut off from its upstream only: the test process still reads both
        assert standby.is_in_recovery()
        assert standby.execute(f"SELECT count(*) FROM {table}") == [(0,)]
        assert primary.execute(f"SELECT count(*) FROM {table}") == [(20000,)]

        standby.heal()
        primary.wait_for_catchup(standby)
        assert standby.execute(f"SELECT count(*) FROM {table}") == [(20000,)]
        assert_replication_lag(primary, standby)


def _recycle_wal(primary: Node, segments: int = 4) -> str:
    """Write and switch WAL segments, then checkpoint, so that the primary removes (or
    recycles) the segments before the current one. Returns a segment now gone."""
    gone = str(primary.query_value("SELECT pg_walfile_name(pg_current_wal_lsn())"))
    primary.execute("CREATE TABLE IF NOT EXISTS wal_filler (x int)")
    for _ in range(segments):
        primary.execute("INSERT INTO wal_filler SELECT generate_series(1, 1000)")
        primary.execute("SELECT pg_switch_wal()")
    primary.execute("CHECKPOINT")
    return gone


def test_a_wal_gap_stops_a_standby_without_a_slot_but_not_one_with_a_slot(
    make_cluster: MakeCluster,
) -> None:
    with make_cluster(standbys=1) as cluster:
        primary, plain = cluster.primary, cluster.standby
        # the WAL receiver retries after 0.5 s (Cluster.pm's), a value set_conf may change
        retry = "SELECT setting, unit, source FROM pg_settings WHERE name = %s"
        for node in cluster.nodes:
            rows = node.execute(retry, ["wal_retrieve_retry_interval"])
            assert rows == [("500", "ms", "configuration file")], node.name
        primary.set_conf(wal_keep_size=0)  # as the seed's primary (the harness keeps some)
        primary.wait_for_catchup(plain)
        plain.stop()
        gone = _recycle_wal(primary)
        assert primary.execute("SELECT count(*) FROM pg_ls_waldir() WHERE name = %s", [gone]) == [
            (0,)
        ]
        plain.start()  # on its own data, which ends before what the primary still has
        with pytest.raises(PgStandbyError, match="has already been removed") as info:
            primary.wait_for_catchup(plain)
        text = str(info.value)
        assert "gave up waiting for standby1 to replay" in text
        assert "slot=True" in text and "wal_keep_size" in text and "reclone()" in text
        # the documented procedure again (in Docker: the seed's container restart)
        plain.reclone()
        assert plain.setup_output().count("Creating base backup...") == 2
        primary.wait_for_catchup(plain)

        slotted = cluster.add_standby(slot=True)
        primary.wait_for_catchup(slotted)
        slotted.stop()
        _recycle_wal(primary)
        slotted.start()
        primary.wait_for_catchup(slotted)  # the slot kept what it needed
        assert slotted.execute("SELECT count(*) FROM wal_filler") == [(8000,)]
        assert slotted.set_conf(wal_retrieve_retry_interval="5s") == []
        assert slotted.query_value("SHOW wal_retrieve_retry_interval") == "5s"
