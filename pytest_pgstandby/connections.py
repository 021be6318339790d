"""A server's conninfo in the forms applications take: a dict of its parameters (psycopg,
asyncpg, Django's ``DATABASES``), a SQLAlchemy URL, and one multi-host conninfo over a
primary and its standbys (libpq's ``target_session_attrs`` picks the server).

>>> params_of("host=127.0.0.1 port=5433 user=postgres password=p@ss/w dbname=app")
{'host': '127.0.0.1', 'port': 5433, 'user': 'postgres', 'password': 'p@ss/w', 'dbname': 'app'}
>>> url_of("host=127.0.0.1 port=5433 user=postgres password=p@ss/w dbname=app")
'postgresql+psycopg://postgres:p%40ss%2Fw@127.0.0.1:5433/app'
>>> one, two = "host=a port=1 user=u password=p", "host=b port=2 user=u password=p"
>>> multi_host([one, two])
'host=a,b port=1,2 user=u password=p target_session_attrs=read-write'
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Sequence
from typing import Any

from psycopg.conninfo import conninfo_to_dict, make_conninfo

from .errors import ConfigurationError

#: SQLAlchemy's dialect+driver names for PostgreSQL (None: a libpq URI, postgresql://)
DRIVERS = ("psycopg", "psycopg2", "asyncpg", "pg8000", "psycopg_async", None)
#: libpq's target_session_attrs (PostgreSQL 14+ clients know them all)
SESSION_ATTRS = ("any", "read-write", "read-only", "primary", "standby", "prefer-standby")
_KEYS = ("host", "port", "user", "password", "dbname")


def params_of(dsn: str, dbname: str | None = None) -> dict[str, Any]:
    """host, port (an int), user, password and dbname of ``dsn``: ``psycopg.connect(**p)``;
    asyncpg takes them with ``database=p["dbname"]``; Django's ``DATABASES`` entry is
    ``{"NAME": p["dbname"], "USER": ..., "PASSWORD": ..., "HOST": ..., "PORT": ...}``."""
    given = conninfo_to_dict(dsn)
    if dbname is not None:
        given["dbname"] = dbname
    out: dict[str, Any] = {k: given[k] for k in _KEYS if given.get(k) is not None}
    if "port" in out:
        out["port"] = int(out["port"])
    return out


def url_of(
    dsn: str, driver: str | None = "psycopg", dbname: str | None = None, **query: Any
) -> str:
    """A SQLAlchemy URL for ``dsn`` (``postgresql+<driver>://``), user and password
    quoted; ``driver=None`` gives the plain ``postgresql://`` URI that libpq, psycopg and
    asyncpg take. ``query`` becomes the URL's query (``sslmode="disable"``, say)."""
    if driver not in DRIVERS:
        raise ConfigurationError(
            f"url(driver={driver!r}): not a PostgreSQL driver SQLAlchemy names. Fix: one of "
            f"{', '.join(repr(d) for d in DRIVERS)} (None: a plain postgresql:// URI)."
        )
    p = params_of(dsn, dbname)

    def quote(text: object) -> str:
        return urllib.parse.quote(str(text), safe="")

    auth = quote(p.get("user", ""))
    if "password" in p:
        auth += ":" + quote(p["password"])
    host = p.get("host", "")
    if ":" in host:  # an IPv6 address
        host = f"[{host}]"
    where = f"{host}:{p['port']}" if "port" in p else host
    scheme = "postgresql" + (f"+{driver}" if driver else "")
    url = f"{scheme}://{auth}@{where}/{quote(p.get('dbname', ''))}"
    if query:
        url += "?" + urllib.parse.urlencode(query)
    return url


def multi_host(
    dsns: Sequence[str], target_session_attrs: str = "read-write", dbname: str | None = None
) -> str:
    """One conninfo over every server of ``dsns`` in order (``host=a,b port=1,2``): libpq
    tries each until one has ``target_session_attrs`` (``read-write``: the primary,
    wherever it is now). The servers must share user and password."""
    if target_session_attrs not in SESSION_ATTRS:
        raise ConfigurationError(
            f"target_session_attrs={target_session_attrs!r} is not one libpq knows. Fix: one "
            f"of {', '.join(SESSION_ATTRS)}."
        )
    each = [params_of(dsn, dbname) for dsn in dsns]
    for key in ("user", "password", "dbname"):
        seen = {p.get(key) for p in each}
        if len(seen) > 1:
            raise ConfigurationError(
                f"a multi-host conninfo has one {key} for all its servers, and these differ "
                f"in it ({len(seen)} values). Fix: connect to each server by its own dsn."
            )
    first = each[0]
    return make_conninfo(
        host=",".join(str(p["host"]) for p in each),
        port=",".join(str(p["port"]) for p in each),
        user=first.get("user"),
        password=first.get("password"),
        dbname=first.get("dbname"),
        target_session_attrs=target_session_attrs,
    )
