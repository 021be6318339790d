"""Fixture factories, as pytest-postgresql has them: a cluster fixture with other settings,
and the one function every cluster fixture builds and tears down through.

>>> from pytest_pgstandby import factories
>>> two_standbys = factories.cluster(scope="module", standbys=2)   # in a conftest.py
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import fields
from typing import Any

import pytest

from .backends.select import docker_status, expecting
from .cluster import Cluster, build_cluster
from .config import Settings, from_sources
from .errors import ConfigurationError, PgStandbyError, UnsupportedError
from .runshare import run_id, shared_cluster
from .snapshots import ClusterSnapshot, cannot_snapshot, copyable, shape_key, take_snapshot
from .spares import asked_again, spares

LIVE_KEY = pytest.StashKey[dict[str, "LiveCluster"]]()
#: per session (per xdist worker): settings -> the snapshot their clusters are copied from,
#: or None where the backend cannot snapshot (fresh="auto" then rebuilds)
SNAPSHOTS_KEY = pytest.StashKey[dict[Settings, "ClusterSnapshot | None"]]()
#: per process: whether the Docker backend can run an image (backend="auto" decides by it)
DOCKER_USABLE_KEY = pytest.StashKey[dict[str, bool]]()
_SCOPES = ("function", "class", "module", "package", "session")


class LiveCluster:
    """A cluster a fixture handed out, and whether a test using it failed."""

    def __init__(self, cluster: Cluster, scope: str = "function") -> None:
        self.cluster = cluster
        self.scope = scope
        self.failed = False
        #: what restoring it after an earlier test did, for the next test's report
        self.note: str | None = None

    @property
    def shared(self) -> bool:
        """Whether several tests use it (restored after each one that changed it)."""
        return self.scope != "function" and not self.cluster.closed


def settings_for(config: pytest.Config, marker: Mapping[str, Any] | None = None) -> Settings:
    """The settings from the command line, the marker, the ini file and the environment."""
    return from_sources(
        cli=lambda name: config.getoption(f"pgstandby_{name}"),
        ini=lambda name: config.getini(f"pgstandby_{name}"),
        marker=marker,
    )


def cluster_for_request(
    request: pytest.FixtureRequest, overrides: Mapping[str, Any]
) -> Iterator[Cluster]:
    """Build a cluster for a fixture; tear it down as ``Settings.keeps`` says."""
    marker = None
    if request.scope == "function":
        mark = request.node.get_closest_marker("pgstandby")
        marker = mark.kwargs if mark else None
    known = {f.name for f in fields(Settings)}
    unknown = sorted(set(marker or {}) - known)
    if unknown:
        pytest.fail(
            f"@pytest.mark.pgstandby got unknown keyword(s) {', '.join(unknown)}. "
            f"Known: {', '.join(sorted(known))}.",
            pytrace=False,
        )
    failed = None
    try:
        # the marker beats the factory's arguments, which beat the command line
        settings = settings_for(request.config).with_overrides(**overrides)
        settings = settings.with_overrides(**(marker or {}))
        if run_shared(request.config, settings):
            cluster = shared_cluster(request.config, settings)
        elif request.scope == "function":
            cluster = fresh_cluster(request.config, settings, asked_again(request))
        else:
            cluster = build_cluster(settings)
    except PgStandbyError as exc:
        failed = str(exc)
    if failed is not None:  # outside the except: the report shows the message once
        pytest.fail(f"pytest-pgstandby could not build the cluster: {failed}", pytrace=False)
    live = request.config.stash.setdefault(LIVE_KEY, {})
    key = request.fixturename or "pgstandby_cluster"
    cluster.journal.clear()  # its build's own set_conf and add_standby
    entry = live[key] = LiveCluster(cluster, request.scope)
    try:
        yield cluster
    finally:
        live.pop(key, None)
        cluster.close(keep=settings.keeps(failed=entry.failed))


def run_shared(config: pytest.Config, settings: Settings) -> bool:
    """Whether this cluster comes from the xdist run's shared snapshot (runshare.py): in a
    worker, for a local cluster a copy can stand for (the conditions of ``fresh``)."""
    if run_id(config) is None or not copyable(settings):
        return False
    if settings.backend == "auto":
        usable = config.stash.setdefault(DOCKER_USABLE_KEY, {})
        if settings.docker_image not in usable:
            usable[settings.docker_image] = docker_status(settings.docker_image)[0]
        return not usable[settings.docker_image]
    return settings.backend == "local"


def remake(config: pytest.Config, settings: Settings) -> tuple[Cluster, str]:
    """A cluster in place of a changed shared one, and how it was made: a copy of a
    snapshot of its shape where there is one, else a build by the scripts."""
    if run_shared(config, settings):
        return shared_cluster(config, settings), "restored from the run's snapshot"
    snapshot = config.stash.get(SNAPSHOTS_KEY, {}).get(shape_key(settings))
    if snapshot is not None:
        return snapshot.restore(settings), "restored from the session's snapshot"
    return build_cluster(settings), "rebuilt by the scripts"


def _rebuilt(settings: Settings, again: bool) -> Cluster:
    """A build by the scripts for one test; on Docker, where a later test asks for the
    same, the next one's containers are made meanwhile (backends/docker_warm.py)."""
    with expecting(again):
        return build_cluster(settings)


def fresh_cluster(config: pytest.Config, settings: Settings, again: bool = True) -> Cluster:
    """A cluster for one test. With ``fresh`` auto or snapshot, the first cluster of given
    settings is built by the scripts and snapshotted, and each later one is a copy of that
    snapshot (local ~0.2 s, Docker under a second, instead of a build); the snapshot goes
    at the end of the session. ``again``: whether a later test asks for the same fixture:
    only then is a first build snapshotted, and a Docker copy made ahead (``spares.py``)."""
    if settings.fresh == "snapshot" and (settings.hardened or settings.archiving):
        why = (
            "profile='hardened': a hardened standby reads its password from a passfile"
            if settings.hardened
            else "archiving=True: the primary's archive_command names the archive"
        )
        raise UnsupportedError(
            f"fresh='snapshot' with {why} of the session that built it, which a copy cannot "
            "take along. Fix: --pgstandby-fresh rebuild (or auto, which rebuilds such "
            "clusters)."
        )
    if not copyable(settings):
        return _rebuilt(settings, again)
    snapshots = config.stash.setdefault(SNAPSHOTS_KEY, {})
    key = shape_key(settings)
    if key in snapshots:
        snapshot = snapshots[key]
        if not snapshot:
            return _rebuilt(settings, again)
        return spares(config).take(key, snapshot, settings, ahead=again)
    built = build_cluster(settings)
    refused = cannot_snapshot(built)
    if refused is not None:
        if settings.fresh == "snapshot":
            built.close()
            raise UnsupportedError(
                f"fresh='snapshot' cannot copy this cluster: {refused}. Fix: --pgstandby-fresh "
                "rebuild (or auto, which rebuilds such clusters), or --pgstandby-backend local."
            )
        snapshots[key] = None
        return built
    if not again:  # no later test asks for this fixture: a snapshot would go unused
        return built
    try:
        snapshot = snapshots[key] = take_snapshot(built)
    except BaseException:
        built.close(keep=settings.keeps(failed=True))
        raise
    ahead = spares(config)
    config.add_cleanup(snapshot.close)
    config.add_cleanup(lambda: ahead.drop(key))  # first: cleanups run last-in first-out
    if again:
        ahead.begin(key, snapshot, settings)  # the next test's copy, while this test runs
    return built


def cluster(
    scope: str = "session",
    *,
    standbys: int | None = None,
    backend: str | None = None,
    image: str | None = None,
    pg_bin: str | None = None,
    keep: str | None = None,
    timeout: float | None = None,
    cascade: bool | None = None,
    slots: bool | None = None,
    archiving: bool | None = None,
    synchronous: str | None = None,
    fresh: str | None = None,
    profile: str | None = None,
    version: str | int | None = None,
    versions: Sequence[str | int] | None = None,
) -> Callable[..., Any]:
    """Make a cluster fixture. Unset arguments come from the command line, ini file and
    environment; with ``scope="function"`` a ``@pytest.mark.pgstandby(...)`` marker on
    the test overrides them too.

    ``cascade=True`` chains the standbys (each streams from the one before);
    ``slots=True`` gives each a physical slot on its upstream; ``archiving=True`` archives
    the primary's WAL into the cluster's archive (``Cluster.add_node(...,
    restoring=True)`` restores from it); ``synchronous="FIRST 1"``
    or ``"ANY 1"`` makes the primary's standbys synchronous. ``fresh`` (function scope):
    ``"snapshot"`` copies a pair built once per session for each test, ``"rebuild"`` runs
    the scripts for each test, ``"auto"`` (default) snapshots where the backend can.
    ``version="13"`` runs that PostgreSQL major (Docker: the image's repository at that
    tag; local: binaries of that major). ``versions=["13", "15", "17"]`` parametrises the
    fixture: every test that uses it runs once per version, ids ``pg13``, ``pg15``, ...

    >>> sync_pair = cluster(scope="function", standbys=2, synchronous="ANY 1")  # doctest: +SKIP
    >>> each_pg = cluster(scope="module", versions=["13", "15", "17"])  # doctest: +SKIP
    """
    if version is not None and versions is not None:
        raise ConfigurationError(
            "factories.cluster got both version= and versions=. Fix: version='17' for one "
            "major, versions=['13', '17'] to run each test once per major."
        )
    overrides = {
        "standbys": standbys,
        "backend": backend,
        "image": image,
        "pg_bin": pg_bin,
        "keep": keep,
        "timeout": timeout,
        "cascade": cascade,
        "slots": slots,
        "archiving": archiving,
        "synchronous": synchronous,
        "fresh": fresh,
        "profile": profile,
        "version": None if version is None else str(version),
    }
    overrides = {k: v for k, v in overrides.items() if v is not None}
    if scope not in _SCOPES:
        raise ConfigurationError(
            f"factories.cluster(scope={scope!r}): not a pytest fixture scope. Fix: one of "
            f"{', '.join(_SCOPES)}."
        )
    params = None if versions is None else [str(v) for v in versions]
    if params is not None and not params:
        raise ConfigurationError("factories.cluster(versions=[]): no version. Fix: list one.")
    for each in params or [""]:  # bad values fail here, at import, by name
        Settings().with_overrides(**overrides, version=each)

    @pytest.fixture(  # type: ignore[call-overload, untyped-decorator]
        scope=scope, params=params, ids=None if params is None else [f"pg{v}" for v in params]
    )
    def _cluster_fixture(request: pytest.FixtureRequest) -> Iterator[Cluster]:
        asked = {"version": request.param} if params is not None else {}
        yield from cluster_for_request(request, {**overrides, **asked})

    return _cluster_fixture  # type: ignore[no-any-return]


def cluster_fixtures(item: pytest.Item) -> dict[str, str]:
    """The cluster fixtures ``item`` uses (this plugin's and factories.cluster's), by name,
    with their scope."""
    info = getattr(item, "_fixtureinfo", None)
    found = {}
    for name, defs in (getattr(info, "name2fixturedefs", None) or {}).items():
        func = getattr(defs[-1], "func", None)
        if getattr(func, "__module__", "").startswith("pytest_pgstandby.") and getattr(
            func, "__name__", ""
        ) in ("_cluster_fixture", "pgstandby_cluster"):
            found[name] = defs[-1].scope
    return found
