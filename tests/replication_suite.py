"""The replication behaviour every backend must show, on a pair built by lab/setup-*.sh.

Imported by tests/local and tests/docker, each of which provides a module-scoped
``pair`` fixture (a Cluster) for its backend.
"""

from __future__ import annotations

import uuid

import psycopg
import pytest

from pytest_pgstandby import Cluster, Node
from pytest_pgstandby.assertions.walsenders import COLUMNS_READ


def test_row_written_on_primary_is_read_on_standby(pair: Cluster) -> None:
    table = f"t_{uuid.uuid4().hex[:8]}"
    pair.primary.execute(f"CREATE TABLE {table} (id int PRIMARY KEY, note text)")
    pair.primary.execute(f"INSERT INTO {table} VALUES (1, 'from the primary')")
    pair.primary.wait_for_catchup(pair.standby)
    assert pair.standby.execute(f"SELECT id, note FROM {table}") == [(1, "from the primary")]


def test_standby_is_in_recovery_and_refuses_writes(pair: Cluster) -> None:
    assert pair.standby.is_in_recovery()
    assert not pair.primary.is_in_recovery()
    with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
        pair.standby.execute("CREATE TABLE must_fail (x int)")


def test_standby_signal_exists(pair: Cluster) -> None:
    assert pair.standby.file_exists("standby.signal")
    assert not pair.primary.file_exists("standby.signal")


def test_basebackup_minus_r_wrote_primary_conninfo_to_auto_conf(pair: Cluster) -> None:
    auto = pair.standby.read_file("postgresql.auto.conf")
    lines = [line for line in auto.splitlines() if line.startswith("primary_conninfo")]
    assert len(lines) == 1, auto
    assert "user=replicator" in lines[0]
    # the seed's value in Docker; a random one per cluster locally (127.0.0.1 is open to
    # every account on the machine)
    assert f"password={pair.backend.replication_password}" in lines[0]


def _primary_as_the_standby_reaches_it(pair: Cluster) -> tuple[str, str]:
    """The values each backend passes to setup-standby.sh for the primary's address."""
    if pair.backend.name == "docker":
        return "postgres-primary-lab", "5432"  # the seed's defaults, inside the network
    return "127.0.0.1", str(pair.primary.port)


def test_postgresql_conf_ends_with_the_appended_standby_block(pair: Cluster) -> None:
    host, port = _primary_as_the_standby_reaches_it(pair)
    conf = pair.standby.read_file("postgresql.conf").rstrip("\n").splitlines()
    assert conf[-3:] == [
        "",
        "# Standby configuration",
        f"primary_conninfo = 'host={host} port={port} user=replicator "
        f"password={pair.backend.replication_password}'",
    ]


def test_pg_hba_conf_holds_the_appended_trust_lines(pair: Cluster) -> None:
    hba = pair.standby.read_file("pg_hba.conf").rstrip("\n").splitlines()
    assert hba[-2:] == [
        "host all all 0.0.0.0/0 trust",
        "host replication all 0.0.0.0/0 trust",
    ]


def test_setup_output_shows_the_documented_script_ran(pair: Cluster) -> None:
    out = pair.standby.setup_output()
    markers = [
        "Starting standby setup...",
        "Primary is ready, creating standby from primary...",
        "Creating base backup...",
        "pg_basebackup: initiating base backup",  # -v
        "kB (100%)",  # -P
        "pg_basebackup: base backup completed",
        "Configuring standby settings...",
        "Starting standby server...",
    ]
    positions = [out.find(m) for m in markers]
    assert -1 not in positions, f"missing {markers[positions.index(-1)]!r} in:\n{out}"
    assert positions == sorted(positions), "the script's steps ran out of order"


def test_the_primary_ran_setup_primary(pair: Cluster) -> None:
    """lab/setup-primary.sh ran on this very primary (on Docker, after the image's initdb
    template was unpacked: the entrypoint's other steps still run)."""
    out = pair.primary.setup_output()
    assert "Creating replication role replicator..." in out, out
    assert "Replication role replicator is ready." in out, out
    assert (
        pair.primary.query_value("SELECT rolreplication FROM pg_roles WHERE rolname = 'replicator'")
        is True
    )


def test_standby_streams_from_the_primary(pair: Cluster) -> None:
    pair.standby.poll_query_until("SELECT status FROM pg_stat_wal_receiver", "streaming")
    assert pair.primary.query_value(
        "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'"
    ) == len(pair.standbys)


def test_a_cascaded_standby_catches_up_with_its_upstream_standby(pair: Cluster) -> None:
    """A standby of a standby, made by the same documented script: the upstream standby's
    target is its replay LSN, as PostgreSQL's Cluster.pm takes it."""
    cascade = Node(
        pair.backend.create_standby("cascade1", upstream=pair.standby.handle),
        pair.settings.timeout,
    )
    cascade.poll_query_until("SELECT status FROM pg_stat_wal_receiver", "streaming")
    table = f"c_{uuid.uuid4().hex[:8]}"
    pair.primary.execute(f"CREATE TABLE {table} AS SELECT 3 AS x")
    pair.primary.wait_for_catchup(pair.standby)
    target = pair.standby.wait_for_catchup(cascade)
    assert pair.standby.query_value("SELECT %s::pg_lsn <= pg_last_wal_replay_lsn()", [target])
    assert cascade.execute(f"SELECT x FROM {table}") == [(3,)]
    assert cascade.is_in_recovery()
    # the cascade streams from the standby, not from the primary
    assert (
        pair.standby.query_value(
            "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'"
        )
        == 1
    )
    cascade.stop("fast")  # the cluster removes it with the others at teardown


def test_restart_keeps_a_standbys_data_and_reclone_remakes_it(pair: Cluster) -> None:
    standby = pair.add_standby()
    assert standby.set_conf(work_mem="7MB") == []  # postgresql.auto.conf, reloaded
    standby.restart()
    assert standby.query_value("SHOW work_mem") == "7MB"
    standby.stop("fast")
    assert not standby.is_running()
    standby.start()
    assert standby.query_value("SHOW work_mem") == "7MB", "stop + start keeps settings"
    assert standby.setup_output().count("Creating base backup...") == 1
    standby.reclone()  # setup-standby.sh again: empty the directory, new base backup
    assert standby.setup_output().count("Creating base backup...") == 2
    assert standby.query_value("SHOW work_mem") == "4MB", "a new clone has the primary's"
    pair.primary.wait_for_catchup(standby)
    assert standby.is_in_recovery()


def test_the_stat_views_have_every_column_the_harness_reads(pair: Cluster) -> None:
    """On the version this suite runs on (the CI matrix: 13, 15, 17 in containers, 15 and
    18 locally), pg_stat_replication and pg_stat_wal_receiver hold what the assertions and
    waits read; a column a new major renames fails here, named."""
    major = pair.primary.server_version_num() // 10000
    for view, columns in COLUMNS_READ.items():
        node = pair.primary if view == "pg_stat_replication" else pair.standby
        with node.connect() as conn:
            cur = conn.execute(f"SELECT * FROM {view} LIMIT 0")
            present = {d.name for d in cur.description or ()}
        wanted = {c for c, since in columns.items() if since <= major}
        assert wanted <= present, f"PostgreSQL {major} {view} lacks {sorted(wanted - present)}"
