from __future__ import annotations

import pytest

from pytest_pgstandby import ConfigurationError, Settings
from pytest_pgstandby.config import from_sources


def test_precedence_cli_over_marker_over_ini_over_env() -> None:
    env = {"PGSTANDBY_BACKEND": "docker", "PGSTANDBY_STANDBYS": "3", "PGSTANDBY_KEEP": "always"}
    ini = {"backend": "local", "standbys": "2"}
    marker = {"standbys": 4}
    cli = {"standbys": "5"}
    s = from_sources(cli=cli.get, ini=ini.get, env=env, marker=marker)
    assert (s.backend, s.standbys, s.keep) == ("local", 5, "always")
    s = from_sources(cli=lambda _: None, ini=ini.get, env=env, marker=marker)
    assert s.standbys == 4
    assert from_sources(env={}) == Settings()


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"PGSTANDBY_BACKEND": "k8s"}, "unknown backend 'k8s'.*Fix"),
        ({"PGSTANDBY_STANDBYS": "two"}, "standbys='two' is not a number"),
        ({"PGSTANDBY_TIMEOUT": "-1"}, "must be a positive number"),
    ],
)
def test_bad_values_name_the_problem(raw: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        from_sources(env=raw)


def test_unknown_override_is_refused() -> None:
    with pytest.raises(ConfigurationError, match=r"unknown pgstandby setting.*standby_count"):
        Settings().with_overrides(standby_count=2)


def test_standby_dsns_split_only_where_a_new_dsn_starts() -> None:
    s = from_sources(
        env={
            "PGSTANDBY_PRIMARY_DSN": "host=p",
            "PGSTANDBY_STANDBY_DSN": "host=a,b port=5433,postgresql://u@c:5434/db, host=d",
            "PGSTANDBY_STANDBY_CONTAINER": "one,two,three",
        }
    )
    assert s.standby_dsn == ("host=a,b port=5433", "postgresql://u@c:5434/db", "host=d")
    assert s.standby_container == ("one", "two", "three")
    assert s.external and s.standby_count == 3
    assert not Settings().external and Settings().standby_count == 1


def test_keep_policy() -> None:
    assert [Settings(keep=k).keeps(failed=False) for k in ("never", "on-failure", "always")] == [
        False,
        False,
        True,
    ]
    assert [Settings(keep=k).keeps(failed=True) for k in ("never", "on-failure", "always")] == [
        False,
        True,
        True,
    ]


def test_factory_refuses_a_bad_scope_or_value_at_once() -> None:
    from pytest_pgstandby import factories

    with pytest.raises(ConfigurationError, match=r"scope='bogus'.*Fix: one of function"):
        factories.cluster(scope="bogus")
    with pytest.raises(ConfigurationError, match="at least one standby"):
        factories.cluster(standbys=0)
    with pytest.raises(ConfigurationError, match="FIRST 1"):
        factories.cluster(synchronous="all of them")
