"""A fresh replicated database per test on a shared cluster: made on the primary, seen on
every standby before the test starts, dropped afterwards (the standbys' sessions in it
closed first, since a standby's open session would hold up the drop's replay).

>>> def test_orders(pgstandby_db):                                      # doctest: +SKIP
...     pgstandby_db.execute("CREATE TABLE orders (id int)")
...     pgstandby_db.wait_replayed()
...     assert pgstandby_db.execute("SELECT count(*) FROM orders", node=standby) == [(0,)]
"""

from __future__ import annotations

import itertools
import os
import uuid
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql as pgsql
from psycopg.conninfo import make_conninfo

from .cluster import Cluster
from .node import Node

_counter = itertools.count(1)


@dataclass
class ReplicatedDatabase:
    """One database of a cluster, by name, with connections to it on any node."""

    name: str
    cluster: Cluster

    def dsn(self, node: Node | None = None) -> str:
        """A conninfo string for this database on ``node`` (the primary by default)."""
        return make_conninfo((node or self.cluster.primary).dsn, dbname=self.name)

    def params(self, node: Node | None = None) -> dict[str, Any]:
        """host, port, user, password and dbname of this database on ``node`` (the
        primary by default): ``psycopg.connect(**db.params(standby))``."""
        return (node or self.cluster.primary).params(dbname=self.name)

    def url(self, node: Node | None = None, driver: str | None = "psycopg", **query: Any) -> str:
        """A SQLAlchemy URL of this database on ``node`` (the primary by default)."""
        return (node or self.cluster.primary).url(driver, dbname=self.name, **query)

    def failover_dsn(self, target_session_attrs: str = "read-write") -> str:
        """One conninfo of this database over every node (``Cluster.dsn``)."""
        return self.cluster.dsn(target_session_attrs, dbname=self.name)

    def connect(self, node: Node | None = None, **kwargs: Any) -> psycopg.Connection[Any]:
        return (node or self.cluster.primary).connect(dbname=self.name, **kwargs)

    def execute(
        self, query: str, params: Any = None, node: Node | None = None
    ) -> list[tuple[Any, ...]]:
        """Run one statement in this database on ``node`` (the primary by default)."""
        return (node or self.cluster.primary).execute(query, params, dbname=self.name)

    def wait_replayed(self) -> None:
        """Wait until every standby has replayed what the primary wrote so far."""
        target = None
        for standby in self.cluster.standbys:
            if standby.is_running():  # a test may have stopped one
                target = self.cluster.primary.wait_for_catchup(standby, target_lsn=target)


def create_database(cluster: Cluster, template: str = "template1") -> ReplicatedDatabase:
    """A new database on the primary, visible on every standby when this returns."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    name = f"pgstandby_{worker}_{next(_counter)}_{uuid.uuid4().hex[:6]}"
    # PostgreSQL 15's default WAL_LOG strategy writes the template's every page to WAL
    # for the standbys to replay; FILE_COPY logs one record (measured here: 100 ms -> 50 ms)
    strategy = " STRATEGY FILE_COPY" if cluster.primary.server_version_num() >= 150000 else ""
    cluster.primary.admin(
        pgsql.SQL("CREATE DATABASE {} TEMPLATE {}" + strategy)
        .format(pgsql.Identifier(name), pgsql.Identifier(template))
        .as_string()
    )
    database = ReplicatedDatabase(name, cluster)
    database.wait_replayed()
    return database


def drop_database(database: ReplicatedDatabase) -> None:
    """Close the standbys' sessions in it, drop it on the primary (forcing out its own
    sessions), and wait until the standbys replayed the drop."""
    cluster = database.cluster
    for standby in cluster.standbys:
        if standby.is_running():
            standby.admin(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                [database.name],
            )
    cluster.primary.admin(
        pgsql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
        .format(pgsql.Identifier(database.name))
        .as_string()
    )
    database.wait_replayed()
