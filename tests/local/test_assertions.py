"""Assertion helpers on real local servers: each passes on a healthy pair and fails, with
the message it should give, on a pair broken for real (no mocks)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_pgstandby import (
    Cluster,
    ConfigurationError,
    Node,
    Settings,
    WaitTimeoutError,
    start_cluster,
)
from pytest_pgstandby.assertions import (
    ReplicationAssertionError,
    ReplicationLag,
    Server,
    assert_primary_conninfo,
    assert_read_only,
    assert_replication_lag,
    assert_standby_signal,
    assert_streaming,
    poll_query_until,
    wait_for_catchup,
)
from pytest_pgstandby.backends.ports import free_port
from tests.docs import assert_documented


@pytest.fixture
def fresh(pgstandby_settings: Settings) -> Iterator[Cluster]:
    """A pair of its own, for tests that break it."""
    with start_cluster(pgstandby_settings, backend="local", standbys=1) as cluster:
        yield cluster


def _children(pid: int) -> dict[int, str]:
    """Child processes of ``pid`` and their titles (``postgres: startup ...``)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            title = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found[int(entry.name)] = title
    return found


@contextlib.contextmanager
def frozen(pids: list[int]) -> Iterator[None]:
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)


# healthy pair ---------------------------------------------------------------------------


def test_every_helper_passes_on_a_healthy_pair(pair: Cluster) -> None:
    primary, standby = pair.primary, pair.standby
    assert_standby_signal(standby)
    conninfo = assert_primary_conninfo(standby, primary, user="replicator")
    assert conninfo["host"] == "127.0.0.1"
    assert conninfo["port"] == str(primary.port)
    assert conninfo["password"] == "********"
    assert_read_only(standby)
    assert_streaming(primary, standby)
    lag = assert_replication_lag(primary, standby)
    assert isinstance(lag, ReplicationLag)
    assert lag.lag_seconds is not None and lag.lag_seconds < 2.0
    assert lag.lag_bytes is not None and lag.marker_lsn is not None
    assert standby.execute("SELECT count(*) FROM pgstandby_lag_probe") == [(1,)]


def test_helpers_take_dsns_and_servers(pair: Cluster) -> None:
    primary, standby = pair.primary, pair.standby
    with_files = Server(standby.dsn, data_dir=standby.data_dir)
    assert_standby_signal(with_files)
    assert_primary_conninfo(with_files, primary.dsn, user="replicator")
    assert_read_only(standby.dsn)
    assert_streaming(primary.dsn, with_files)
    assert_replication_lag(primary.dsn, standby.dsn, max_bytes=16 * 1024 * 1024)
    primary.execute("CREATE TABLE IF NOT EXISTS via_dsn AS SELECT 1 AS x")
    target = wait_for_catchup(primary.dsn, standby.dsn, timeout=10)
    assert "/" in target
    poll_query_until(standby.dsn, "SELECT count(*) FROM via_dsn", 1, timeout=10)


def test_waits_on_dsns_are_bounded_and_say_what_they_awaited(pair: Cluster) -> None:
    with pytest.raises(WaitTimeoutError, match=r"`SELECT 1` on .* to return 2") as info:
        poll_query_until(pair.standby.dsn, "SELECT 1", 2, timeout=0.3)
    assert "last observed" in str(info.value)
    assert_documented(str(info.value))


def test_file_checks_on_a_bare_dsn_say_which_argument_enables_them(pair: Cluster) -> None:
    with pytest.raises(ReplicationAssertionError) as info:
        assert_standby_signal(pair.standby.dsn)
    text = str(info.value)
    assert "standby.signal could not be checked" in text
    assert "Server(dsn, data_dir=" in text and "Server(dsn, container=" in text
    assert "pg_is_in_recovery() -> True" in text
    assert_documented(text)
    # primary_conninfo is still checked from pg_settings; the files are only reported
    assert_primary_conninfo(pair.standby.dsn, pair.primary.dsn)


def test_a_password_in_a_dsn_never_reaches_a_message() -> None:
    secret = "hunter2-of-the-dsn"
    with pytest.raises(ReplicationAssertionError) as info:
        assert_read_only(f"host=127.0.0.1 port={free_port()} user=x password={secret}")
    assert "cannot connect to the standby" in str(info.value)
    assert secret not in str(info.value) and "password=********" in str(info.value)
    assert secret not in repr(Server(f"postgresql://x:{secret}@127.0.0.1:1/db"))


def test_bad_input_is_refused_with_a_message() -> None:
    with pytest.raises(TypeError, match="must be a Node, a Server or a libpq DSN string"):
        assert_read_only(5432)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="is not a libpq conninfo") as info:
        assert_read_only("host=127.0.0.1 password=s3cr3t-value nonsense")
    assert "s3cr3t-value" not in str(info.value)


# broken pairs ---------------------------------------------------------------------------


def test_a_server_started_without_standby_signal_is_no_standby(fresh: Cluster) -> None:
    standby = fresh.standby
    standby.stop("fast")
    os.remove(Path(standby.data_dir) / "standby.signal")
    standby.start()  # no standby.signal: recovery ends and the server becomes a primary
    with pytest.raises(ReplicationAssertionError, match="2 problems") as info:
        assert_standby_signal(standby)
    text = str(info.value)
    assert f"standby.signal is missing from the data directory {standby.data_dir}" in text
    assert "pg_is_in_recovery() is false: the server runs as a primary" in text
    assert "Rebuild it from the primary" in text
    assert len(info.value.problems) == 2
    assert_documented(text)


def test_primary_conninfo_with_a_wrong_port_and_a_password(fresh: Cluster) -> None:
    primary, standby = fresh.primary, fresh.standby
    secret = "S3cr3t pass"
    standby.execute(
        "ALTER SYSTEM SET primary_conninfo = "
        f"'host=127.0.0.1 port=1 user=replicator password=''{secret}'''"
    )
    assert_primary_conninfo(standby, primary)  # the effective value counts: not reloaded yet
    standby.execute("SELECT pg_reload_conf()")  # PostgreSQL 13+: applied without a restart
    standby.poll_query_until(
        "SELECT count(*) FROM pg_stat_wal_receiver WHERE status = 'streaming'", 0, timeout=10
    )
    messages = []

    with pytest.raises(ReplicationAssertionError, match=r"port is '1', expected") as info:
        assert_primary_conninfo(standby, primary)
    text = str(info.value)
    messages.append(text)
    auto_conf = f"{standby.data_dir}/postgresql.auto.conf"
    # ALTER SYSTEM wrote it last (after the harness's wal_keep_size): its line in the file
    lines = standby.read_file("postgresql.auto.conf").splitlines()
    line = 1 + next(i for i, text in enumerate(lines) if text.startswith("primary_conninfo"))
    assert f"expected '{primary.port}' (the primary's port, from the primary's DSN)" in text
    assert f"set in {auto_conf}:{line}" in text
    assert "primary_conninfo is set in 2 places (the last one read wins):" in text
    sources = [line.strip() for line in text.splitlines() if line.startswith("      /")]
    conf_line, auto_line = sources
    assert conf_line.startswith(f"{standby.data_dir}/postgresql.conf:")
    assert f"port={primary.port}" in conf_line and "<- wins" not in conf_line
    assert auto_line.startswith(f"{auto_conf}:{line} ")
    assert "port=1" in auto_line and auto_line.endswith("<- wins")

    with pytest.raises(ReplicationAssertionError, match="no WAL receiver") as info:
        assert_streaming(primary, standby, timeout=0.5)
    messages.append(str(info.value))
    assert "the primary has no walsender for application_name 'standby1'" in str(info.value)
    assert_documented(messages[0])
    assert_documented(messages[1])

    primary.execute("CREATE TABLE written_while_cut_off AS SELECT generate_series(1, 1000)")
    with pytest.raises(ReplicationAssertionError, match="measured lag >") as info:
        assert_replication_lag(primary, standby, max_seconds=0.5)
    messages.append(str(info.value))

    for message in messages:
        assert secret not in message and "S3cr3t" not in message
        assert fresh.backend.replication_password not in message  # the standby's conninfo
        assert "password=********" in message or "password" not in message


def test_a_promoted_standby_fails_read_only_saying_the_write_succeeded(fresh: Cluster) -> None:
    standby = fresh.standby
    fresh.primary.execute("CREATE TABLE existing (id int)")
    fresh.primary.wait_for_catchup(standby)
    assert_read_only(standby)
    standby.promote()
    with pytest.raises(ReplicationAssertionError, match="the write succeeded") as info:
        assert_read_only(standby)
    text = str(info.value)
    assert "pg_is_in_recovery() is false: the server is a primary" in text
    assert "SHOW transaction_read_only is 'off', expected 'on'" in text
    assert "the write succeeded: `CREATE TABLE pgstandby_ro_probe_" in text
    assert "the write succeeded: `INSERT INTO public.existing" in text
    assert "does not exist (nothing changed)" in text
    assert_documented(text)
    assert standby.execute(
        "SELECT count(*) FROM pg_class WHERE relname LIKE 'pgstandby_ro_probe_%'"
    ) == [(0,)]
    assert standby.execute("SELECT count(*) FROM existing") == [(0,)]
    with pytest.raises(ReplicationAssertionError, match="2 problems"):
        assert_standby_signal(standby)  # pg_promote removed standby.signal
    # no wait makes a primary stream: said at once, not after the settle wait
    started = time.monotonic()
    with pytest.raises(ReplicationAssertionError, match="it is not in recovery at all") as info:
        assert_streaming(fresh.primary, standby, timeout=60)
    assert time.monotonic() - started < 30, "said at once, not at the timeout"
    assert "still failing after" not in str(info.value)


def test_a_frozen_standby_fails_the_lag_check_with_the_measured_lag(fresh: Cluster) -> None:
    primary, standby = fresh.primary, fresh.standby
    postmaster = standby.handle.proc.pid  # type: ignore[attr-defined]
    children = _children(postmaster)
    startup = [pid for pid, title in children.items() if "startup" in title]
    receiver = [pid for pid, title in children.items() if "walreceiver" in title]
    assert len(startup) == 1 and len(receiver) == 1, children

    # replay stopped, the standby still answers: lag measured on the standby itself
    with frozen(startup):
        primary.execute("CREATE TABLE during_replay_freeze AS SELECT generate_series(1, 5000)")
        with pytest.raises(
            ReplicationAssertionError, match=r"measured lag > 2\.\d\d s \(max_seconds=2\)"
        ) as info:
            assert_replication_lag(primary, standby)  # the seed's default: 2 s
    text = str(info.value)
    assert "max_seconds=2" in text
    assert "stayed at" in text and "standby's pg_last_wal_replay_lsn()" in text
    byte_line = next(line for line in text.splitlines() if "byte lag:" in line)
    assert "byte lag: 0 bytes" not in byte_line and "unknown" not in byte_line
    assert_documented(text)
    primary.wait_for_catchup(standby, timeout=30)
    assert_replication_lag(primary, standby)

    # postmaster, startup and walreceiver frozen: no connection; the primary's view is shown
    with frozen([postmaster, *startup, *receiver]):
        primary.execute("CREATE TABLE during_full_freeze AS SELECT generate_series(1, 5000)")
        started = time.monotonic()
        with pytest.raises(
            ReplicationAssertionError, match="cannot connect to the standby"
        ) as info:
            assert_replication_lag(primary, standby, max_seconds=1.0)
        elapsed = time.monotonic() - started
    assert elapsed < 6, f"a frozen standby held the check for {elapsed:.1f}s"
    text = str(info.value)
    assert "measured lag >" in text and "max_seconds=1" in text
    assert "the primary's view (pg_stat_replication" in text
    byte_line = next(line for line in text.splitlines() if "byte lag:" in line)
    assert "unknown" not in byte_line and "byte lag: 0 bytes" not in byte_line
    primary.wait_for_catchup(standby, timeout=30)


def test_grades_a_pair_built_by_hand_from_plain_dsns(
    hand_built_pair: tuple[str, str, Path],
) -> None:
    primary_dsn, standby_dsn, standby_dir = hand_built_pair
    standby = Server(standby_dsn, data_dir=str(standby_dir))
    wait_for_catchup(primary_dsn, standby_dsn, timeout=30)
    assert_standby_signal(standby)
    conninfo = assert_primary_conninfo(standby, primary_dsn, user="replicator")
    assert conninfo["port"] == primary_dsn.split("port=")[1].split()[0]
    assert_read_only(standby_dsn)
    assert_streaming(primary_dsn, standby)
    assert_replication_lag(primary_dsn, standby)
    with pytest.raises(ReplicationAssertionError, match="2 problems") as info:
        assert_standby_signal(Server(primary_dsn, data_dir=str(standby_dir.parent / "primary")))
    assert "standby.signal is missing" in str(info.value)


def test_node_and_server_forms_agree(pair: Cluster) -> None:
    node: Node = pair.standby
    assert assert_primary_conninfo(node) == assert_primary_conninfo(
        Server(node.dsn, data_dir=node.data_dir)
    )


def test_an_unreachable_nameless_standby_is_never_graded_by_another_ones_walsender(
    pair: Cluster,
) -> None:
    """Issue 20 #10: a standby DSN where nothing answers, on a primary with one walsender
    (another standby's): that walsender's replay position stood in for the lag."""
    primary = pair.primary.dsn
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        nothing = s.getsockname()[1]  # bound, not listening: connections are refused
        with pytest.raises(ReplicationAssertionError) as info:
            assert_replication_lag(primary, f"host=127.0.0.1 port={nothing} user=postgres")
    text = str(info.value)
    assert "cannot connect to the standby" in text
    assert "which of the primary's 1 walsender(s) serves it cannot be told" in text, text
    assert "the primary's view" not in text and "byte lag: unknown" in text, text
