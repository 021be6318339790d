"""What an application's test suite does with a replicated pair (issue 21): connect with
the forms its drivers and ORMs take, and keep finding the primary across a failover.
Imported by tests/local and tests/docker, each of which provides
``make_cluster(**settings)`` for its backend.
"""

from __future__ import annotations

import psycopg
import pytest
import sqlalchemy

from pytest_pgstandby import ReplicatedDatabase
from tests.scenarios import MakeCluster, _table


def test_an_orm_engine_from_url_and_a_driver_from_params(make_cluster: MakeCluster) -> None:
    with make_cluster(standbys=1) as cluster:
        primary, standby = cluster.primary, cluster.standby
        table = _table()
        writes = sqlalchemy.create_engine(primary.url())
        reads = sqlalchemy.create_engine(standby.url())
        try:
            with writes.begin() as conn:
                conn.execute(sqlalchemy.text(f"CREATE TABLE {table} (v text)"))
                conn.execute(sqlalchemy.text(f"INSERT INTO {table} VALUES ('written')"))
            primary.wait_for_catchup(standby)
            with reads.connect() as conn:
                got = conn.execute(sqlalchemy.text(f"SELECT v FROM {table}")).scalar_one()
                assert got == "written"
                assert conn.execute(sqlalchemy.text("SELECT pg_is_in_recovery()")).scalar()
        finally:
            writes.dispose()
            reads.dispose()
        with psycopg.connect(**standby.params()) as conn:
            assert conn.execute(f"SELECT v FROM {table}").fetchone() == ("written",)
        database = ReplicatedDatabase("postgres", cluster)
        assert database.params(standby)["port"] == standby.port
        assert database.url(standby, driver=None).startswith("postgresql://")


def test_the_failover_dsn_finds_the_new_primary(make_cluster: MakeCluster) -> None:
    """Cluster.dsn(): one conninfo over every node; target_session_attrs=read-write keeps
    finding the primary after kill + promote + follow, as an application's pool would."""
    with make_cluster(standbys=2) as cluster:
        old, new, other = cluster.primary, *cluster.standbys
        table = _table()
        failover = cluster.dsn()  # read-write
        with psycopg.connect(failover, autocommit=True) as conn:
            conn.execute(f"CREATE TABLE {table} (v text)")
            assert conn.info.port == old.port
        with psycopg.connect(cluster.dsn("standby")) as conn:
            assert conn.info.port in (new.port, other.port)
        old.wait_for_catchup(new)
        old.wait_for_catchup(other)

        old.kill()
        new.promote()
        other.follow(new)

        with psycopg.connect(failover, autocommit=True) as conn:  # the same string
            assert conn.info.port == new.port
            conn.execute(f"INSERT INTO {table} VALUES ('after the failover')")
        new.wait_for_catchup(other)
        assert other.execute(f"SELECT v FROM {table}") == [("after the failover",)]
        with pytest.raises(psycopg.OperationalError):
            # every node is a standby or down: read-write finds nothing
            new.stop()
            psycopg.connect(failover, connect_timeout=3)
