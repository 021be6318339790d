"""The hardened profile, on every backend: the same script steps given scram-sha-256, a
random replication password in a 0600 passfile, a slot per standby. A connection without
the password is refused on every node, and no password is in any node's configuration
files, logs or setup output.

Imported by tests/local and tests/docker, each of which provides a module-scoped
``hardened`` fixture (a Cluster built with profile="hardened") for its backend.
"""

from __future__ import annotations

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from pytest_pgstandby import Cluster, Node

CONFIG_FILES = ("postgresql.conf", "postgresql.auto.conf", "pg_hba.conf")


def without_password(node: Node, **extra: str) -> str:
    params = {k: v for k, v in conninfo_to_dict(node.dsn).items() if k != "password"}
    # no ~/.pgpass of the account running the tests either
    return make_conninfo(**{**params, **extra}, passfile="/nonexistent/pgpass", connect_timeout="5")


def test_a_connection_without_the_password_is_refused_on_every_node(hardened: Cluster) -> None:
    for node in hardened.nodes:
        for extra in ({}, {"replication": "true"}, {"user": "replicator", "replication": "true"}):
            # refused for want of the password (or, on the Docker primary, because no line
            # admits the superuser's replication connections at all)
            refused = "no password supplied|no pg_hba.conf entry"
            with pytest.raises(psycopg.OperationalError, match=refused):
                psycopg.connect(without_password(node, **extra)).close()
        node.execute("SELECT 1")  # with the password (the harness's DSN) it gets in


def test_the_seed_password_no_longer_opens_replication(hardened: Cluster) -> None:
    seed = {"user": "replicator", "password": "replicator_password", "replication": "true"}
    for node in hardened.nodes:
        params = {**conninfo_to_dict(without_password(node)), **seed}
        with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
            psycopg.connect(make_conninfo(**params)).close()


def test_the_appended_lines_are_scram_and_the_standby_reads_a_passfile(hardened: Cluster) -> None:
    standby = hardened.standby
    hba = standby.read_file("pg_hba.conf").rstrip("\n").splitlines()
    assert hba[-2:] == [
        "host all all 0.0.0.0/0 scram-sha-256",
        "host replication all 0.0.0.0/0 scram-sha-256",
    ]
    rules = hardened.primary.execute(
        "SELECT auth_method FROM pg_hba_file_rules WHERE 'replicator' = ANY(user_name)"
    )
    assert rules == [("scram-sha-256",)]
    conninfo = standby.query_value(
        "SELECT setting FROM pg_settings WHERE name = 'primary_conninfo'"
    )
    assert "passfile=" in str(conninfo) and "password=" not in str(conninfo)
    assert standby.query_value("SELECT status FROM pg_stat_wal_receiver") == "streaming"


def test_each_standby_streams_through_a_slot_of_its_own(hardened: Cluster) -> None:
    slots = dict(hardened.primary.execute("SELECT slot_name, active FROM pg_replication_slots"))
    assert slots == {s.name: True for s in hardened.standbys}


def test_no_password_in_any_config_file_log_or_setup_output(hardened: Cluster) -> None:
    primary = hardened.primary
    primary.execute("CREATE TABLE hardened_probe AS SELECT 1 AS x")
    for standby in hardened.standbys:
        primary.wait_for_catchup(standby)
    secrets = {
        hardened.backend.replication_password,
        str(conninfo_to_dict(primary.dsn)["password"]),
    }
    assert all(len(secret) >= 16 for secret in secrets)  # random, not the seed's
    for node in hardened.nodes:
        texts = {name: node.read_file(name) for name in CONFIG_FILES}
        texts |= {"log": node.log(), "setup output": node.setup_output()}
        for where, text in texts.items():
            for secret in secrets:
                assert secret not in text, f"a password is in {node.name}'s {where}"
