"""The conninfo forms applications take (no server needed: pure string work; the same
helpers against real servers are in tests/applications.py)."""

from __future__ import annotations

import doctest

import psycopg.conninfo
import pytest

from pytest_pgstandby import connections
from pytest_pgstandby.connections import multi_host, params_of, url_of
from pytest_pgstandby.errors import ConfigurationError

DSN = "host=127.0.0.1 port=5433 user=app password='p@ss w/:%' dbname=shop"


def test_the_module_examples_hold() -> None:
    assert doctest.testmod(connections).failed == 0


def test_params_are_psycopgs_keywords_with_an_int_port() -> None:
    p = params_of(DSN)
    assert p == {
        "host": "127.0.0.1", "port": 5433, "user": "app", "password": "p@ss w/:%",
        "dbname": "shop",
    }  # fmt: skip
    assert params_of(DSN, dbname="other")["dbname"] == "other"


def test_a_url_quotes_what_a_url_would_misread() -> None:
    url = url_of(DSN)
    assert url == "postgresql+psycopg://app:p%40ss%20w%2F%3A%25@127.0.0.1:5433/shop"
    # libpq reads the plain URI back to the same parameters
    plain = url_of(DSN, driver=None, sslmode="disable")
    assert plain.startswith("postgresql://") and plain.endswith("?sslmode=disable")
    back = psycopg.conninfo.conninfo_to_dict(plain)
    assert {k: back[k] for k in ("host", "port", "user", "password", "dbname")} == {
        "host": "127.0.0.1", "port": "5433", "user": "app", "password": "p@ss w/:%",
        "dbname": "shop",
    }  # fmt: skip
    assert url_of("host=::1 port=5 user=u dbname=d").startswith("postgresql+psycopg://u@[::1]:5/")


def test_an_unknown_driver_or_session_attribute_is_named_with_the_choices() -> None:
    with pytest.raises(ConfigurationError, match=r"url\(driver='mysql'\).*'psycopg'"):
        url_of(DSN, driver="mysql")
    with pytest.raises(ConfigurationError, match="'primary-only' is not one libpq knows"):
        multi_host([DSN], "primary-only")


def test_a_multi_host_conninfo_needs_one_user_and_password() -> None:
    other = DSN.replace("user=app", "user=other")
    with pytest.raises(ConfigurationError, match="one user for all its servers"):
        multi_host([DSN, other])
    joined = psycopg.conninfo.conninfo_to_dict(multi_host([DSN, DSN.replace("5433", "5434")]))
    assert (joined["host"], joined["port"]) == ("127.0.0.1,127.0.0.1", "5433,5434")
    assert joined["target_session_attrs"] == "read-write"
