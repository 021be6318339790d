"""The external backend: a pair built by hand with the documented commands, handed to a
downstream test file through --pgstandby-primary-dsn & co. It runs unchanged, and the
pair is still running, unchanged, afterwards: the harness never touches such servers."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_pgstandby import NotOwnedError, Server, as_node
from tests.helpers import EXTERNAL_DOWNSTREAM_TEST


def _postmaster_pid(data_dir: Path) -> int:
    return int((data_dir / "postmaster.pid").read_text().splitlines()[0])


def test_a_downstream_file_runs_unchanged_against_a_hand_built_pair(
    pytester: pytest.Pytester, hand_built_pair: tuple[str, str, Path]
) -> None:
    primary_dsn, standby_dsn, standby_dir = hand_built_pair
    primary_dir = standby_dir.parent / "primary"
    pids = _postmaster_pid(primary_dir), _postmaster_pid(standby_dir)
    pytester.makepyfile(test_downstream=EXTERNAL_DOWNSTREAM_TEST)
    result = pytester.runpytest_subprocess(
        "-p",
        "no:cacheprovider",
        "-n",
        "2",
        f"--pgstandby-primary-dsn={primary_dsn}",
        f"--pgstandby-standby-dsn={standby_dsn}",
        f"--pgstandby-standby-data-dir={standby_dir}",
    )
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines(["pgstandby: external servers: primary host=127.0.0.1*"])
    # still running, the same processes, the standby still a streaming standby
    assert (_postmaster_pid(primary_dir), _postmaster_pid(standby_dir)) == pids
    standby = as_node(Server(standby_dsn, data_dir=str(standby_dir)), "standby")
    assert standby.is_in_recovery() and standby.file_exists("standby.signal")
    standby.poll_query_until("SELECT status FROM pg_stat_wal_receiver", "streaming")


def test_env_and_comma_lists_name_the_pair_too(
    pytester: pytest.Pytester,
    hand_built_pair: tuple[str, str, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    primary_dsn, standby_dsn, standby_dir = hand_built_pair
    monkeypatch.setenv("PGSTANDBY_PRIMARY_DSN", primary_dsn)
    monkeypatch.setenv("PGSTANDBY_STANDBY_DSN", standby_dsn)
    monkeypatch.setenv("PGSTANDBY_STANDBY_DATA_DIR", str(standby_dir))
    pytester.makepyfile(test_downstream=EXTERNAL_DOWNSTREAM_TEST)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=4)


def test_external_nodes_refuse_every_verb_that_would_change_them(
    hand_built_pair: tuple[str, str, Path],
) -> None:
    _, standby_dsn, standby_dir = hand_built_pair
    standby = as_node(standby_dsn, "standby")
    for verb, call in [
        ("promote", standby.promote),
        ("stop", standby.stop),
        ("start", standby.start),
        ("restart", standby.restart),
        ("kill", standby.kill),
        ("pause", standby.pause),
        ("partition", standby.partition),
        ("reclone", standby.reclone),
        ("change the settings of", lambda: standby.set_conf(work_mem="8MB")),
        ("create a replication slot on", lambda: standby.create_slot("x")),
        # the recovery verbs, through the same guard
        ("pause replay on", standby.pause_replay),
        ("resume replay on", standby.resume_replay),
        ("take a backup of", lambda: standby.backup("b")),
        ("rewind", lambda: standby.rewind(as_node(standby_dsn))),
        ("kill the walreceiver of", lambda: standby.kill_process("walreceiver")),
        ("advance the WAL of", standby.advance_wal),
        ("enable archiving on", standby.enable_archiving),
    ]:
        with pytest.raises(NotOwnedError, match=f"refusing to {verb}") as info:
            call()
        assert "Fix:" in str(info.value)
    assert standby.is_in_recovery() and not standby.is_replay_paused()
    assert standby.connect_ok("SELECT pg_is_in_recovery()") is True  # reading is allowed
    with pytest.raises(Exception, match="it was given as a bare DSN"):
        standby.read_file("postgresql.auto.conf")
    with_files = as_node(Server(standby_dsn, data_dir=str(standby_dir)), "standby")
    assert with_files.file_exists("standby.signal")
    with pytest.raises(FileNotFoundError):
        with_files.read_file("no-such-file")
