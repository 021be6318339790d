"""Issue 20 #6: servers given by DSN that no wait can make usable are refused at once,
in one line naming the fix: bad credentials, no such role or database, a malformed DSN,
and a standby DSN whose server is a primary (or the reverse)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from psycopg.conninfo import make_conninfo

from pytest_pgstandby import ConfigurationError, WrongRoleError, start_cluster
from pytest_pgstandby.cluster import Cluster


@pytest.fixture(scope="module")
def built() -> Iterator[Cluster]:
    with start_cluster(backend="local") as cluster:  # password (scram) authentication
        yield cluster


@pytest.mark.parametrize(
    ("change", "said", "fix"),
    [
        ({"password": "wrong"}, "password authentication failed", "correct the user and password"),
        ({"user": "nosuch"}, 'for user "nosuch"', "correct the user and password"),
        ({"dbname": "nosuch"}, 'database "nosuch" does not exist', "name a role and a database"),
        ({"port": "notaport"}, 'invalid integer value "notaport"', "correct the DSN"),
    ],
    ids=["password", "user", "dbname", "port"],
)
def test_a_primary_dsn_no_wait_can_mend_is_refused_at_once(
    built: Cluster, change: dict[str, str], said: str, fix: str
) -> None:
    primary = make_conninfo(built.primary.dsn, **change)
    given = start_cluster(primary_dsn=primary, standby_dsn=(built.standby.dsn,), timeout=60)
    with pytest.raises(ConfigurationError) as raised, given:  # a wait ends in WaitTimeoutError
        pass
    message = str(raised.value)
    assert message.startswith("gave up at once waiting for primary"), message
    assert said in message and f"Fix: {fix}" in message, message
    assert "wrong" not in message.replace("wrong role", ""), "the password is masked"
    assert len(message.splitlines()) == 1, message


def test_a_standby_dsn_whose_server_is_a_primary_says_so(built: Cluster) -> None:
    given = start_cluster(primary_dsn=built.primary.dsn, standby_dsn=(built.primary.dsn,))
    with pytest.raises(WrongRoleError) as raised, given:
        pass
    message = str(raised.value)
    assert "given by --pgstandby-standby-dsn as the standby, is a primary" in message, message
    assert "Fix: give the DSN of a standby" in message, message


def test_a_primary_dsn_whose_server_is_a_standby_says_so(built: Cluster) -> None:
    given = start_cluster(primary_dsn=built.standby.dsn, standby_dsn=(built.standby.dsn,))
    with pytest.raises(WrongRoleError) as raised, given:
        pass
    assert "as the primary, is a standby (in recovery)" in str(raised.value)
