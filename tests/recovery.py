"""Recovery depth every backend must show, each on a cluster of its own, in the vocabulary
of PostgreSQL's Cluster.pm and the steps of its pg_rewind and recovery TAP tests (the map
is in docs/scenarios.md). Imported by tests/local and tests/docker, each of which
provides ``make_cluster(**settings)`` for its backend.
"""

from __future__ import annotations

import time

import psycopg
import pytest

from pytest_pgstandby import (
    ConfigurationError,
    Node,
    PgStandbyError,
    ServerDownError,
    WrongRoleError,
)
from pytest_pgstandby.classroom.doctor import diagnose
from tests.scenarios import MakeCluster, _table


def _started(node: Node) -> str:
    return str(node.query_value("SELECT pg_postmaster_start_time()::text"))


def test_rewind_rejoins_an_old_primary_that_diverged(make_cluster: MakeCluster) -> None:
    """pg_rewind/t/001_basic.pl: a standby is promoted while the old primary goes on
    writing; rewind makes the old primary a standby of the new one, its own rows gone."""
    with make_cluster(standbys=1) as cluster:
        old, new = cluster.primary, cluster.standby
        table = _table()
        old.execute(f"CREATE TABLE {table} (v text)")
        old.execute(f"INSERT INTO {table} VALUES ('in both')")
        old.wait_for_catchup(new)
        new.promote()
        old.execute(f"INSERT INTO {table} VALUES ('only on the old primary')")
        new.execute(f"INSERT INTO {table} VALUES ('only on the new primary')")
        port = old.port

        output = old.rewind(new)

        assert "Done!" in output, output
        assert old.is_in_recovery() and old.port == port
        assert old.file_exists("standby.signal")
        new.execute(f"INSERT INTO {table} VALUES ('after the rewind')")
        new.wait_for_catchup(old)
        rows = {r[0] for r in old.execute(f"SELECT v FROM {table}")}
        assert rows == {"in both", "only on the new primary", "after the rewind"}
        assert old.timeline() == new.timeline() == 2
        # a wrong source is refused at once: a standby cannot be rewound onto
        with pytest.raises(WrongRoleError, match="it is a standby"):
            new.rewind(old)


def test_point_in_time_recovery_to_an_lsn_a_restore_point_and_an_xid(
    make_cluster: MakeCluster,
) -> None:
    """recovery/t/003_recovery_targets.pl: a base backup and the WAL archive restore to
    each kind of target, then the node is promoted there."""
    with make_cluster(standbys=1, archiving=True) as cluster:
        primary = cluster.primary
        table = _table()
        primary.execute(f"CREATE TABLE {table} (n int)")
        before = primary.backup("before")
        assert "base backup completed" in before.output and before.source == "primary"

        primary.execute(f"INSERT INTO {table} VALUES (1)")
        lsn = primary.query_value("SELECT pg_current_wal_insert_lsn()::text")
        primary.execute(f"INSERT INTO {table} VALUES (2)")
        primary.execute("SELECT pg_create_restore_point('after_two')")
        primary.execute(f"INSERT INTO {table} VALUES (3)")
        xid = primary.query_value(f"INSERT INTO {table} VALUES (4) RETURNING txid_current()")
        primary.execute(f"INSERT INTO {table} VALUES (5)")
        last = primary.query_value("SELECT pg_walfile_name(pg_current_wal_lsn())")
        primary.advance_wal(1)
        primary.poll_query_until(
            "SELECT last_archived_wal >= %s FROM pg_stat_archiver", True, params=[last]
        )

        targets = {
            "recovery_target_lsn": (lsn, 1),
            "recovery_target_name": ("after_two", 2),
            "recovery_target_xid": (xid, 4),
        }
        for i, (target, (value, rows)) in enumerate(targets.items()):
            node = cluster.add_node(
                f"pitr{i}",
                before,
                restoring=True,
                standby=False,
                conf={target: value, "recovery_target_action": "promote"},
            )
            node.poll_query_until("SELECT pg_is_in_recovery()", False)
            assert node.execute(f"SELECT count(*) FROM {table}") == [(rows,)], target
            node.execute(f"INSERT INTO {table} VALUES (100)")  # promoted: it writes
            assert node.log_contains(r"recovery stopping"), target
        assert primary.execute(f"SELECT count(*) FROM {table}") == [(5,)]


def test_a_recovery_target_never_reached_is_named(make_cluster: MakeCluster) -> None:
    """A target past the end of the archive: the server stops with a FATAL line, which
    add_node names with the fix, at once (a kept container outlives its server)."""
    with make_cluster(standbys=1, archiving=True) as cluster:
        backup = cluster.primary.backup("short")
        started = time.monotonic()
        with pytest.raises(PgStandbyError) as info:
            conf = {"recovery_target_lsn": "FF/0"}
            cluster.add_node("never", backup, restoring=True, standby=False, conf=conf)
        assert time.monotonic() - started < 30, "ended by the log, not by the timeout"
        assert str(info.value).startswith(
            "never could not start from backup 'short': targeted recovery ran out of WAL "
            "before its recovery target: neither the backup nor the archive holds WAL up to "
            'it ("recovery ended before configured recovery target was reached" in its log). '
            "Fix: a target between the backup's end and the last archived segment"
        ), str(info.value)


def test_a_standby_from_a_backup_streams_and_restores(make_cluster: MakeCluster) -> None:
    """Cluster.pm's init_from_backup(has_streaming => 1, has_restoring => 1), from a
    backup of a standby."""
    with make_cluster(standbys=1, archiving=True) as cluster:
        primary, standby = cluster.primary, cluster.standby
        table = _table()
        primary.execute(f"CREATE TABLE {table} AS SELECT 1 AS n")
        primary.wait_for_catchup(standby)
        backup = standby.backup("of_a_standby")
        primary.execute(f"INSERT INTO {table} VALUES (2)")

        third = cluster.add_node("third", backup, streaming=True, restoring=True)

        assert third in cluster.standbys and third.is_in_recovery()
        assert "cp " in str(third.query_value("SHOW restore_command"))
        primary.execute(f"INSERT INTO {table} VALUES (3)")
        primary.wait_for_catchup(third)
        assert third.execute(f"SELECT count(*) FROM {table}") == [(3,)]
        # an existing name is refused before anything is made
        with pytest.raises(PgStandbyError, match="taken"):
            cluster.add_node("third", backup)


def test_paused_replay_receives_but_does_not_apply(make_cluster: MakeCluster) -> None:
    with make_cluster(standbys=1) as cluster:
        primary, standby = cluster.primary, cluster.standby
        table = _table()
        primary.execute(f"CREATE TABLE {table} (n int)")
        primary.wait_for_catchup(standby)
        standby.pause_replay()
        assert standby.is_replay_paused()

        primary.execute(f"INSERT INTO {table} VALUES (1)")
        primary.wait_for_catchup(standby, mode="receive")
        assert standby.execute(f"SELECT count(*) FROM {table}") == [(0,)]
        assert standby.lsn("receive") != standby.lsn("replay")

        standby.resume_replay()
        assert not standby.is_replay_paused()
        primary.wait_for_catchup(standby)
        assert standby.execute(f"SELECT count(*) FROM {table}") == [(1,)]
        started = time.monotonic()
        with pytest.raises(WrongRoleError) as info:
            primary.pause_replay()
        assert time.monotonic() - started < 5, "refused at once, not after a wait"
        assert str(info.value) == (
            "pause_replay() of primary: it is a primary (not in recovery). Fix: call it on a "
            "standby."
        )


def test_a_killed_walreceiver_comes_back(make_cluster: MakeCluster) -> None:
    with make_cluster(standbys=1) as cluster:
        primary, standby = cluster.primary, cluster.standby
        offset = standby.log_offset()
        killed = standby.kill_process("walreceiver")

        end = standby.wait_for_log(r"started streaming WAL", offset)
        assert end > offset
        assert standby.log_contains(r"WAL receiver process \(PID \d+\) was terminated", offset)
        standby.poll_query_until(
            "SELECT pid <> ALL(%s) AND status = 'streaming' FROM pg_stat_wal_receiver",
            params=[killed],
        )
        table = _table()
        primary.execute(f"CREATE TABLE {table} AS SELECT 1 AS n")
        primary.wait_for_catchup(standby)
        assert standby.execute(f"SELECT n FROM {table}") == [(1,)]
        with pytest.raises(PgStandbyError, match="no such process runs now"):
            primary.kill_process("walreceiver")


def test_connect_ok_and_connect_fails(make_cluster: MakeCluster) -> None:
    with make_cluster(standbys=1) as cluster:
        primary = cluster.primary
        assert primary.connect_ok("SELECT current_user") == "postgres"
        error = primary.connect_fails(
            "password authentication failed",
            password="wrong",
            log_like=[r'password authentication failed for user "postgres"'],
        )
        assert "FATAL" in error
        with pytest.raises(AssertionError, match="the login succeeded"):
            primary.connect_fails("anything")
        with pytest.raises(AssertionError, match="failed, but not as expected"):
            primary.connect_fails("no such error", password="wrong")
        with pytest.raises(AssertionError, match="the login or `SELECT 1` failed"):
            primary.connect_ok(password="wrong")


def test_advance_wal_switches_segments(make_cluster: MakeCluster) -> None:
    with make_cluster(standbys=1) as cluster:
        primary = cluster.primary
        first = primary.query_value("SELECT pg_walfile_name(pg_current_wal_insert_lsn())")
        lsn = primary.advance_wal(3)
        now = primary.query_value("SELECT pg_walfile_name(%s::pg_lsn)", [lsn])
        assert int(now[-8:], 16) - int(first[-8:], 16) == 3, (first, now)
        with pytest.raises(WrongRoleError, match="a standby writes no WAL"):
            cluster.standby.advance_wal()


def test_an_invalidated_slot_ends_the_wait_at_once(make_cluster: MakeCluster) -> None:
    """recovery/t/019_replslot_limit.pl: a standby that falls further behind than
    max_slot_wal_keep_size loses its slot; a wait on it stops at once and says so."""
    with make_cluster(standbys=1, slots=True) as cluster:
        primary, standby = cluster.primary, cluster.standby
        primary.set_conf(max_slot_wal_keep_size="1MB", wal_keep_size=0)
        primary.wait_for_catchup(standby)
        standby.stop()
        offset = primary.log_offset()
        primary.advance_wal(3)
        primary.execute("CHECKPOINT")
        primary.wait_for_log(r'invalidating (?:obsolete replication )?slot "standby1"', offset)
        assert primary.slot("standby1")["wal_status"] == "lost"
        standby.start()
        started = time.monotonic()
        with pytest.raises(PgStandbyError) as info:
            primary.wait_for_catchup(standby)
        assert time.monotonic() - started < 30, "ended by the log, not by the timeout"
        text = str(info.value)
        assert text.startswith(
            "standby1's replication slot 'standby1' on primary was invalidated (wal_status "
            "lost): the standby fell further behind than max_slot_wal_keep_size=1MB allows"
        ), text
        assert "Fix: standby.reclone()" in text and "gave up waiting" in text
        # the doctor names the same cause at its WAL step
        step = next(st for st in diagnose(primary, standby) if st.name == "WAL still available")
        assert not step.ok and "'standby1' on primary was invalidated" in step.evidence
        assert step.fix.startswith("standby.reclone()")


@pytest.mark.parametrize("shape", [{"slots": True}, {"profile": "hardened"}])
def test_failover_with_a_slot_per_standby(
    make_cluster: MakeCluster, shape: dict[str, object]
) -> None:
    """recovery/t/004_timeline_switch.pl with slots: the sibling follows the promoted
    standby across the timeline switch, through a slot follow() made there, with no
    restart of its server."""
    with make_cluster(standbys=2, **shape) as cluster:
        primary, standby1, standby2 = cluster.primary, *cluster.standbys
        table = _table()
        primary.execute(f"CREATE TABLE {table} AS SELECT 1 AS n")
        primary.wait_for_catchup(standby1)
        primary.wait_for_catchup(standby2)
        started = _started(standby2)
        primary.kill()
        standby1.promote()
        assert standby1.slot("standby2") is None, "slots are not replicated"

        standby2.follow(standby1)

        standby1.execute(f"INSERT INTO {table} VALUES (2)")
        standby1.wait_for_catchup(standby2)
        assert standby2.execute(f"SELECT count(*) FROM {table}") == [(2,)]
        assert standby2.timeline() == standby1.timeline() == 2
        assert _started(standby2) == started, "follow() restarted the server"
        slot = standby1.slot("standby2")
        assert slot is not None and slot["active"]
        assert (standby1, "standby2") in cluster.slots  # dropped at teardown
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            standby2.execute(f"INSERT INTO {table} VALUES (3)")


def test_wrong_roles_directions_and_stopped_servers_are_said_at_once(
    make_cluster: MakeCluster,
) -> None:
    """Issue 20 #6: each of these waited out the timeout, raised the driver's error, or
    passed silently; each now ends at once naming what is wrong and the fix."""
    with make_cluster(standbys=1, timeout=30) as cluster:
        primary, standby = cluster.primary, cluster.standby
        started = time.monotonic()
        with pytest.raises(WrongRoleError, match=r"promote\(\) of primary: it is a primary"):
            primary.promote()
        with pytest.raises(WrongRoleError, match=r"partition\(\) of primary: it is a primary"):
            primary.partition()
        with pytest.raises(ConfigurationError, match=r"heal\(\) of standby1: nothing is cut"):
            standby.heal()
        with pytest.raises(WrongRoleError, match=r"primary is a primary .* replays nothing"):
            standby.wait_for_catchup(primary)
        standby.stop()
        with pytest.raises(ServerDownError, match=r"standby1 is not running.*standby1.start"):
            primary.wait_for_catchup(standby)
        standby.start()
        primary.kill()
        with pytest.raises(ServerDownError, match=r"primary is not running .*primary.start"):
            primary.wait_for_catchup(standby)
        assert time.monotonic() - started < 15, "each said at once, not after the timeout"
