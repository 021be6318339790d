"""pytest hooks only: options, ini keys, the marker, fixtures, the report header, and the
servers' logs (and a failing assert_replication_lag's samples) attached to a failing
test's report."""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import threading
from collections import Counter
from collections.abc import Generator, Iterator
from dataclasses import fields

import psycopg
import pytest

from . import binaries, healing, reports, runshare
from ._text import mask_secrets
from .assertions.lag import LagSample
from .backends.select import docker_status, drain_warm, engine_status
from .classroom import lagview
from .cluster import Cluster, take_built
from .config import LIST_SETTINGS, Settings
from .databases import ReplicatedDatabase, create_database, drop_database
from .errors import PgStandbyError
from .factories import (
    LIVE_KEY,
    LiveCluster,
    cluster_fixtures,
    cluster_for_request,
    remake,
    settings_for,
)
from .node import Node

SETTINGS_KEY = pytest.StashKey[Settings]()
#: a test report's user property: the servers its cluster ran (Cluster.describe_servers)
SERVER_PROPERTY = "pgstandby_server"
_SERVERS_RAN: Counter[tuple[str, str]] = Counter()
RESTORED_PROPERTY = "pgstandby_restored"
_RESTORED: list[str] = []
#: in the xdist controller: the run directories its workers shared (runshare.py)
_RUN_DIRS: list[str] = []


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("pgstandby", "PostgreSQL streaming replication (pytest-pgstandby)")
    for f in fields(Settings):
        opt = f.name.replace("_", "-")
        repeatable = f.name in LIST_SETTINGS
        group.addoption(
            f"--pgstandby-{opt}",
            dest=f"pgstandby_{f.name}",
            default=None,
            action="append" if repeatable else "store",
            help=f.metadata["help"] + f"; env PGSTANDBY_{f.name.upper()}",
        )
        parser.addini(f"pgstandby_{f.name}", f.metadata["help"], default=None)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "pgstandby(**settings): settings for a function-scoped cluster fixture made by "
        "pytest_pgstandby.factories.cluster (standbys=, backend=, image=, ...)",
    )
    try:
        settings = settings_for(config)
        if settings.pg_bin or settings.backend == "local":
            binaries.find(settings.pg_bin, major=settings.version)
    except PgStandbyError as exc:
        raise pytest.UsageError(f"pytest-pgstandby: {exc}") from None
    config.stash[SETTINGS_KEY] = settings
    if settings.docker_hosts:
        # an xdist worker has workerinput (its environment may be inherited by a nested
        # pytest, which is no worker)
        workerinput = getattr(config, "workerinput", None)
        if workerinput is None and settings.backend != "local":
            _check_pool(settings)  # once, in the process that starts the workers
        # the pool: this process's daemon, by its xdist worker number (gw0, gw1, ...); the
        # Docker backend, testcontainers and the reaper all read DOCKER_HOST
        worker = (workerinput or {}).get("workerid", "gw0").removeprefix("gw")
        index = int(worker) if worker.isdigit() else 0
        os.environ["DOCKER_HOST"] = settings.docker_hosts[index % len(settings.docker_hosts)]
    _terminate_like_an_interrupt(config)


def _check_pool(settings: Settings) -> None:
    """Every daemon of the pool answers and holds the image, before the first test."""
    from .backends.containers import pool_problems

    problems = pool_problems(settings.docker_hosts, settings.docker_image)
    if problems:
        raise pytest.UsageError(
            f"pytest-pgstandby: {len(problems)} of the {len(settings.docker_hosts)} Docker "
            "daemons of --pgstandby-docker-hosts cannot run the servers; no test ran:\n  "
            + "\n  ".join(problems)
        )


def _terminate_like_an_interrupt(config: pytest.Config) -> None:
    """SIGTERM (a CI cancel, `timeout`) ends the session as Ctrl-C does: fixtures tear
    down and every server goes. Only where nobody installed a handler of their own."""
    if (
        threading.current_thread() is not threading.main_thread()
        or signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL
    ):
        return

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")

    def restore() -> None:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)

    signal.signal(signal.SIGTERM, interrupt)
    config.add_cleanup(restore)
    config.stash[LIVE_KEY] = {}


def pytest_report_header(config: pytest.Config) -> list[str]:
    settings = config.stash.get(SETTINGS_KEY, None)
    if settings is None:
        return []
    if settings.external:
        given = ", ".join(mask_secrets(d) for d in settings.standby_dsn)
        return [
            f"pgstandby: external servers: primary {mask_secrets(settings.primary_dsn or '')}; "
            f"standbys {given} (never started, stopped or changed by the harness)"
        ]
    version = f", version={settings.version}" if settings.version else ""
    lines = [
        f"pgstandby: backend={settings.backend}, image={settings.docker_image}, "
        f"keep={settings.keep}{version}"
    ]
    try:
        found = binaries.find(settings.pg_bin, major=settings.version)
        lines.append(f"pgstandby: local binaries: {found.describe()}")
    except PgStandbyError as exc:
        lines.append(f"pgstandby: local binaries: none usable ({str(exc).split('.')[0]})")
    if settings.backend in ("auto", "docker"):
        usable, why = docker_status(settings.docker_image)
        if usable:
            verdict = "docker"
        else:
            verdict = "local" if settings.backend == "auto" else "docker unusable"
        lines.append(f"pgstandby: {settings.backend} -> {verdict}: {why}")
        if usable and not settings.docker_hosts:
            engine = engine_status(settings.profile)
            if engine:
                lines.append(f"pgstandby: docker engine: {engine}")
    if settings.docker_hosts:
        lines.append(
            f"pgstandby: a pool of {len(settings.docker_hosts)} Docker daemons, one per xdist "
            f"worker by its number: {', '.join(settings.docker_hosts)}"
        )
    return lines


@pytest.fixture(scope="session")
def pgstandby_settings(pytestconfig: pytest.Config) -> Settings:
    """The resolved settings (CLI > ini > env > default)."""
    return pytestconfig.stash[SETTINGS_KEY]


@pytest.fixture(scope="session")
def pgstandby_cluster(request: pytest.FixtureRequest) -> Iterator[Cluster]:
    """A primary and its standbys for the whole session, per the documented procedure."""
    yield from cluster_for_request(request, {})


@pytest.fixture
def pgstandby_db(pgstandby_cluster: Cluster) -> Iterator[ReplicatedDatabase]:
    """A fresh database of the session cluster for this test: on the primary, already on
    every standby when the test starts, dropped afterwards. ``.name``, ``.dsn(node)``,
    ``.connect(node)``, ``.execute(sql, node=...)``, ``.wait_replayed()``."""
    database = create_database(pgstandby_cluster)
    try:
        yield database
    finally:
        drop_database(database)


@pytest.fixture
def pgstandby_primary(pgstandby_cluster: Cluster) -> Node:
    """The primary of ``pgstandby_cluster``."""
    return pgstandby_cluster.primary


@pytest.fixture
def pgstandby_standby(pgstandby_cluster: Cluster) -> Node:
    """The first standby of ``pgstandby_cluster``."""
    return pgstandby_cluster.standby


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    built = take_built()  # clusters built in this phase: by fixtures, or the test itself
    if report.when == "call":
        # and any cluster the test got from a fixture built earlier (server_version is
        # read once per node, at build)
        servers = dict.fromkeys(built)
        for value in getattr(item, "funcargs", {}).values():
            if isinstance(value, Cluster):
                with contextlib.suppress(PgStandbyError, psycopg.Error):
                    servers[value.describe_servers()] = None
        report.user_properties += [(SERVER_PROPERTY, server) for server in servers]
    if report.when == "call" or (report.when == "setup" and report.failed):
        for entry in _used(item):
            if entry.note:  # what restoring it after an earlier test did
                report.sections.append(("pgstandby", entry.note))
                report.user_properties.append((RESTORED_PROPERTY, entry.note))
                entry.note = None
    if report.failed:
        settings = item.config.stash.get(SETTINGS_KEY, None)
        mode = settings.report if settings is not None else "short"
        error = call.excinfo.value if call.excinfo else None
        for used in _used(item):
            used.failed = True
            for title, text in reports.sections(used.cluster, mode, error):
                report.sections.append((title, mask_secrets(text)))
        samples = getattr(call.excinfo.value, "lag_samples", None) if call.excinfo else None
        if samples:
            report.sections.append(("pgstandby replication lag", _lag_section(item, samples)))
    return report


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """A ``pgstandby`` marker shapes function-scoped factory clusters only: on a test that
    has none, it would be ignored without a word."""
    mark = item.get_closest_marker("pgstandby")
    if mark is None:
        return
    used = cluster_fixtures(item)
    if any(scope == "function" for scope in used.values()):
        return
    asked = ", ".join(f"{k}={v!r}" for k, v in mark.kwargs.items())
    uses = ", ".join(f"{n} ({scope}-scoped)" for n, scope in used.items()) or "no cluster fixture"
    pytest.fail(
        f"@pytest.mark.pgstandby({asked}) on {item.nodeid} shapes nothing: it shapes only "
        f"function-scoped factory clusters, and this test uses {uses}, built once for many "
        'tests. Fix: give the test a factories.cluster(scope="function") fixture, or '
        "set the shared cluster's shape on the command line / ini (--pgstandby-standbys ...).",
        pytrace=False,
    )


def _used(item: pytest.Item) -> list[LiveCluster]:
    """The live clusters of the fixtures ``item`` uses."""
    live = item.config.stash.get(LIVE_KEY, {})
    return [live[name] for name in getattr(item, "fixturenames", ()) if name in live]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> Generator[None]:
    """After a test's own fixtures are gone: a shared cluster it changed is put back
    (healing.py), and the next test that uses it is told what was done."""
    result = yield
    live = item.config.stash.get(LIVE_KEY, {})
    for name in getattr(item, "fixturenames", ()):
        entry = live.get(name)
        if entry is None or not entry.shared:
            continue
        keep = entry.cluster.settings.keeps(failed=entry.failed)
        made = functools.partial(remake, item.config)
        restored = healing.restore(entry.cluster, keep=keep, remake=made)
        if restored is not None:
            entry.note = restored.line(item.nodeid, name)
    return result


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: object, error: object) -> None:
    """xdist's controller: a worker ended; note the shared run directories it used."""
    _RUN_DIRS.extend(getattr(node, "workeroutput", {}).get(runshare.RUNS_OUTPUT, []))


def pytest_unconfigure(config: pytest.Config) -> None:
    """Warm Docker kits not taken go; the controller removes what its workers shared,
    once every worker is down."""
    drain_warm()
    if _RUN_DIRS and getattr(config, "workerinput", None) is None:
        runshare.remove_runs(_RUN_DIRS)
        _RUN_DIRS.clear()


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """In the process that prints (the xdist controller too): which servers ran tests,
    and which shared clusters were restored after which test."""
    for name, value in report.user_properties:
        if name == SERVER_PROPERTY and report.when == "call":
            _SERVERS_RAN[(str(value), report.outcome)] += 1
        if name == RESTORED_PROPERTY:
            _RESTORED.append(str(value))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """One line per server that ran tests, as it printed its version: the matrix a run
    proves (``PostgreSQL 13.22 (Debian 13.22-0+deb11u1) on docker (...): 40 passed``)."""
    servers = sorted({server for server, _ in _SERVERS_RAN})
    for server in servers:
        counts = ", ".join(
            f"{_SERVERS_RAN[(server, outcome)]} {outcome}"
            for outcome in ("passed", "failed", "skipped")
            if _SERVERS_RAN[(server, outcome)]
        )
        terminalreporter.write_line(f"pgstandby: {server}: {counts}")
    for line in _RESTORED:
        terminalreporter.write_line(f"pgstandby: restored: {line}")


def _lag_section(item: pytest.Item, samples: list[LagSample]) -> str:
    """The samples as a table, and their picture in the test's tmp_path (else a directory
    of the session's base temp) when matplotlib is installed."""
    png = None
    if lagview.can_plot():
        png = "not written (no temporary directory)"
        tmp_path = getattr(item, "funcargs", {}).get("tmp_path")
        factory = getattr(item.config, "_tmp_path_factory", None)  # what tmp_path uses
        if tmp_path is None and factory is not None:
            tmp_path = factory.mktemp("pgstandby-lag")
        if tmp_path is not None:
            series = lagview.LagSeries("primary", "standby", samples, primary_lsn_kind="write")
            png = str(tmp_path / "replication-lag.png")
            try:
                lagview.write_png(series, png)
            except (OSError, ValueError) as exc:
                png = f"not written ({exc})"
    return mask_secrets(lagview.section_text(samples, png))
