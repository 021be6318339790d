"""Nothing another account plants in the shared temp directory is ever used or followed,
and the harness signals only processes it started (issue 20, findings 1 to 3).

The attacks are made for real by a second account (``nobody``): a complete initdb'd
template with ``trust`` for ``postgres`` where the harness's cache is predictable, the
harness's own private directory made first by the attacker, a symlink where a lock is
opened. A root process standing in a kept session directory is the bystander of the
sweep. Switching to a second account needs root: CI runs these as root.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_pgstandby import Settings, binaries, start_cluster
from pytest_pgstandby._wait import poll_until
from pytest_pgstandby.backends import sessions
from pytest_pgstandby.backends.accounts import binaries_for, run_account
from pytest_pgstandby.backends.local import LocalBackend
from pytest_pgstandby.backends.sessions import HOME_PREFIX, processes_under
from pytest_pgstandby.backends.template import PREFIX, template_dir
from pytest_pgstandby.errors import UnsafeDataDirError
from tests.helpers import reapers_of, wait_for_child_file

OTHER = "nobody"  # the attacker: neither the servers' account nor the tests'


@pytest.fixture
def shared() -> Iterator[Path]:
    """A directory like /dev/shm: mode 1777, every account writes there."""
    if os.geteuid() != 0:
        pytest.skip("planting as a second account needs root (CI runs this suite as root)")
    if shutil.which("setfacl") is None:
        pytest.fail("setfacl is missing: lab/setup-host.sh installs it (Debian: acl)")
    if run_account().name == OTHER:
        pytest.skip(f"the servers run as {OTHER!r}: no third account to attack them with")
    made = Path(tempfile.mkdtemp(prefix="planted-", dir="/tmp"))
    os.chmod(made, 0o1777)
    yield made
    shutil.rmtree(made, ignore_errors=True)


def as_other(
    argv: list[str], cwd: Path | str = "/", **env: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv,
        user=OTHER,
        group="nogroup",
        extra_groups=[],
        env={"PATH": "/usr/bin:/bin", "HOME": "/nonexistent", "PGPASSFILE": "/dev/null", **env},
        cwd="/",
        capture_output=True,
        text=True,
        timeout=60,
    )


def superuser_as_other(psql: str, port: int) -> str:
    """What the attacker gets asking for superuser with no password (-w: never prompt)."""
    conninfo = f"host=127.0.0.1 port={port} user=postgres dbname=postgres"
    done = as_other([psql, "-XAtw", "-d", conninfo, "-c", "SELECT 1"], PGCONNECT_TIMEOUT="5")
    return (done.stdout + done.stderr).strip()


def plant_trusting_template(where: Path, bindir: Path) -> None:
    """The attack of finding 1: a real initdb by the attacker, superuser ``postgres`` with
    ``trust`` for every connection, which an ACL lets the servers' account read (the data
    directory keeps its mode 0700, which PostgreSQL demands)."""
    as_other(["mkdir", "-p", str(where)])
    options = ["-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8", "--locale=C"]
    done = as_other([str(bindir / "initdb"), "-D", str(where / "data"), *options])
    assert done.returncode == 0, done.stdout + done.stderr
    as_other(["chmod", "0755", str(where)])
    as_other(["setfacl", "-R", "-m", f"u:{run_account().name}:rX", str(where / "data")])


@pytest.mark.parametrize("profile", ["documented", "hardened"])
def test_a_planted_template_is_never_copied(
    pgstandby_settings: Settings,
    shared: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    profile: str,
) -> None:
    account = run_account()
    bins = binaries_for(binaries.find(pgstandby_settings.pg_bin), account)
    # where the template is predictable: in the shared directory itself (up to 0.1.0), and
    # in the harness's private directory, which the attacker makes first
    planted_home = shared / f"{HOME_PREFIX}{os.geteuid()}"
    as_other(["mkdir", "-m", "0777", str(planted_home)])
    for base in (shared, planted_home):
        plant_trusting_template(template_dir(bins, account, base), bins.bindir)
    monkeypatch.setenv("PGSTANDBY_TMPDIR", str(shared))

    settings = pgstandby_settings.with_overrides(backend="local", profile=profile)
    with caplog.at_level(logging.WARNING), start_cluster(settings, standbys=1) as cluster:
        psql = str(cluster.backend.bins.path("psql"))  # type: ignore[attr-defined]
        for node in (cluster.primary, cluster.standby):
            answer = superuser_as_other(psql, node.port)
            assert answer.splitlines()[-1] != "1", f"{node.name}: the attacker got in"
            assert "no password supplied" in answer, answer
        home = cluster.backend.base  # type: ignore[attr-defined]
        assert home.parent == shared and home.stat().st_uid == os.geteuid()
        assert oct(home.stat().st_mode & 0o777) == "0o711"  # the servers' account traverses
    # the attacker's directory was set aside, named once, and neither used nor deleted
    aside = [p for p in shared.iterdir() if p.name.startswith(f".{planted_home.name}.foreign-")]
    assert len(aside) == 1 and aside[0].stat().st_uid != os.geteuid()
    assert (aside[0] / template_dir(bins, account, aside[0]).name / "data" / "PG_VERSION").exists()
    notices = [r.getMessage() for r in caplog.records if "set aside" in r.getMessage()]
    assert notices == [
        f"set aside {planted_home} as {aside[0]}: not made by this account "
        f"(owner uid {aside[0].stat().st_uid}); never used"
    ]


def test_a_planted_symlink_or_version_file_neither_denies_nor_redirects(
    pgstandby_settings: Settings, shared: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Finding 1's denial of service (a bare data/PG_VERSION where the template goes) and
    finding 2 (the lock opened through a symlink, as root, with fs.protected_symlinks=0):
    planted in the shared directory and through a symlink where the private one goes."""
    account = run_account()
    bins = binaries_for(binaries.find(pgstandby_settings.pg_bin), account)
    theirs = Path(tempfile.mkdtemp(prefix="theirs-", dir="/tmp"))
    os.chown(theirs, int(as_other(["id", "-u"]).stdout), -1)
    secret = Path(tempfile.mkdtemp(prefix="root-only-", dir="/tmp"))  # 0700 root's
    try:
        made = template_dir(bins, account, shared)
        key = made.name.rsplit("-", 1)[1]
        for base in (shared, theirs):
            bare = template_dir(bins, account, base) / "data"
            as_other(["mkdir", "-p", str(bare)])
            as_other(["touch", str(bare / "PG_VERSION")])
            for lock in (f".{PREFIX}{key}.lock", f".{made.name}.lock"):
                as_other(["ln", "-s", str(secret / f"created-via-{lock}"), str(base / lock)])
        as_other(["ln", "-s", str(theirs), str(shared / f"{HOME_PREFIX}{os.geteuid()}")])
        monkeypatch.setenv("PGSTANDBY_TMPDIR", str(shared))

        with start_cluster(pgstandby_settings, backend="local", standbys=1) as cluster:
            cluster.primary.wait_for_catchup(cluster.standby)

        assert list(secret.iterdir()) == [], "a file was created through a planted symlink"
        assert (shared / f"{HOME_PREFIX}{os.geteuid()}").is_dir()
        assert not (shared / f"{HOME_PREFIX}{os.geteuid()}").is_symlink()
        assert sorted(p.name for p in theirs.iterdir()) == sorted(
            [made.name, f".{PREFIX}{key}.lock", f".{made.name}.lock"]
        ), "the attacker's directory was written to"
    finally:
        shutil.rmtree(theirs, ignore_errors=True)
        shutil.rmtree(secret, ignore_errors=True)


def bystander(cwd: Path) -> subprocess.Popen[bytes]:
    """A root shell's ``sleep``, standing in a directory (as a user inspecting it would)."""
    return subprocess.Popen(["sleep", "300"], cwd=cwd, start_new_session=True)


def _owner(pid: int) -> int | None:
    """The uid of a process, or None once it has gone (a server's short-lived child can
    exit between the listing of /proc and this look)."""
    try:
        return os.stat(f"/proc/{pid}").st_uid
    except FileNotFoundError:
        return None


@pytest.mark.parametrize("who_cleans", ["reaper", "next session's sweep"])
def test_a_process_standing_in_a_left_session_is_not_killed(
    pgstandby_settings: Settings, shared: Path, tmp_path: Path, who_cleans: str
) -> None:
    """Finding 3: a session killed with SIGKILL (its servers kept running, as with
    --pgstandby-keep) is removed by its reaper or the next session's sweep; the servers
    die, a root ``sleep`` working in its directory and in a data directory does not."""
    ready = tmp_path / "ready"
    child = textwrap.dedent(
        f"""
        import pathlib, time
        from pytest_pgstandby.backends.local import LocalBackend
        base = pathlib.Path({str(shared)!r})
        backend = LocalBackend(pg_bin={pgstandby_settings.pg_bin!r}, base=base)
        primary = backend.create_primary("primary")
        backend.create_standby("standby1", primary)
        pathlib.Path({str(ready)!r}).write_text(str(backend.root))
        time.sleep(600)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", child])
    sleepers: list[subprocess.Popen[bytes]] = []
    try:
        root = Path(wait_for_child_file(ready, proc))
        servers = [p for p in processes_under(root) if _owner(p) not in (0, None)]
        assert servers, "the session runs no server?"
        sleepers = [bystander(root), bystander(root / "standby1")]
        if who_cleans != "reaper":
            for reaper in reapers_of(proc.pid):
                os.kill(reaper, signal.SIGKILL)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        if who_cleans != "reaper":
            LocalBackend(pg_bin=pgstandby_settings.pg_bin, base=shared).close()
        poll_until(
            lambda: not root.exists() and not any(Path(f"/proc/{p}").exists() for p in servers),
            what="the session's servers and directory to go",
            timeout=15,
            log=lambda: f"left: {processes_under(root)}",
        )
        assert [s.poll() for s in sleepers] == [None, None], "a bystander was killed"
    finally:
        if proc.poll() is None:
            proc.kill()
        for sleeper in sleepers:
            sleeper.kill()
            sleeper.wait()


def state_of(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


def test_pause_stops_the_servers_processes_only(pgstandby_settings: Settings) -> None:
    if os.geteuid() != 0:
        pytest.skip("a bystander of another account than the servers' needs root")
    with start_cluster(pgstandby_settings, backend="local", standbys=1) as cluster:
        standby = cluster.standby
        sleeper = bystander(Path(standby.data_dir))
        try:
            poll_until(lambda: state_of(sleeper.pid) == "S", what="sleep to sleep", timeout=10)
            servers = [p for p in processes_under(Path(standby.data_dir)) if p != sleeper.pid]
            standby.pause()
            try:
                # a signal is handled when its process next runs: wait for every server
                poll_until(
                    lambda: {state_of(p) for p in servers} == {"T"},
                    what="every server process to stop",
                    timeout=10,
                    log=lambda: str({p: state_of(p) for p in servers}),
                )
                bystanders_state = state_of(sleeper.pid)
            finally:
                standby.resume()
            assert bystanders_state == "S", "a root process in the data directory was stopped"
        finally:
            sleeper.kill()
            sleeper.wait()


def test_an_account_that_may_not_set_aside_a_foreign_directory_is_told_the_fix(
    shared: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An unprivileged account may not rename another's entry in a sticky directory: the
    rename's refusal (EPERM, as the kernel gives it) becomes the harness's error."""
    planted = shared / f"{HOME_PREFIX}{os.geteuid()}"
    as_other(["mkdir", "-m", "0777", str(planted)])

    def refused(src: object, dst: object) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(sessions.os, "rename", refused)
    with pytest.raises(UnsafeDataDirError) as info:
        sessions.private_dir(shared, run_account().uid)
    message = str(info.value)
    assert message.startswith(f"{planted} is not this account's (owner uid ")
    assert "drwxrwxrwx" in message and "(Operation not permitted)" in message
    assert "Fix: have it removed" in message and "PGSTANDBY_TMPDIR" in message
    assert planted.is_dir() and list(planted.iterdir()) == []
