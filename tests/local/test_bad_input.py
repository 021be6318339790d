"""Bad input that reaches real local servers (docs/errors.md has the whole matrix): each is
answered in one line naming the problem and the fix, and leaves nothing of the user's
touched and nothing of the harness's behind."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pytest_pgstandby import (
    Settings,
    SetupFailedError,
    TooManyStandbysError,
    WaitTimeoutError,
    binaries,
)
from pytest_pgstandby.backends.sessions import HOME_PREFIX, processes_under
from pytest_pgstandby.backends.template import PREFIX as TEMPLATE_PREFIX
from pytest_pgstandby.cluster import build_cluster


@pytest.fixture
def base(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A PGSTANDBY_TMPDIR of the test's own (every account can traverse it, as the
    server account must), holding a file of the user's."""
    made = Path(tempfile.mkdtemp(prefix="bad-input-"))
    made.chmod(0o755)
    (made / "precious.txt").write_text("keep")
    monkeypatch.setenv("PGSTANDBY_TMPDIR", str(made))
    try:
        yield made
    finally:
        shutil.rmtree(made, ignore_errors=True)


def _left(base: Path) -> list[str]:
    """What is in ``base`` and in the harness's private directory there, besides the
    initdb template and its lock (a cache that stays by design) and the directory itself."""

    def kept(p: Path) -> bool:
        return not p.name.lstrip(".").startswith(TEMPLATE_PREFIX)

    names = [p.name for p in base.iterdir() if kept(p) and not p.name.startswith(HOME_PREFIX)]
    for home in base.glob(HOME_PREFIX + "*"):
        names += [f"{home.name}/{p.name}" for p in home.iterdir() if kept(p)]
    return sorted(names)


def test_more_standbys_than_wal_senders_are_refused_before_any_is_built(
    pgstandby_settings: Settings, base: Path
) -> None:
    settings = pgstandby_settings.with_overrides(backend="local", standbys=1000)
    with pytest.raises(TooManyStandbysError) as info:
        build_cluster(settings)
    assert str(info.value) == (
        "standbys=1000: 1000 standby(s) streaming from the primary need 1001 WAL senders "
        "(the last one's base backup takes a second), but the primary allows "
        "max_wal_senders=10; no standby was built. Fix: at most 9 standbys (or "
        "cascade=True), or a primary with a larger max_wal_senders (postgresql.conf, then a "
        "restart)."
    )
    assert _left(base) == ["precious.txt"], "the primary's session directory went with it"
    assert processes_under(base) == []


def test_a_step_slower_than_the_timeout_is_a_timeout_error_not_a_raw_subprocess_one(
    pgstandby_settings: Settings, base: Path
) -> None:
    """A step that outlasts the bound (an initdb that never ends: bad binaries given as
    --pgstandby-pg-bin, every other program the real one) is killed and named, with the
    fix; nothing of the user's is touched and no process is left."""
    real = binaries.find(pgstandby_settings.pg_bin)
    bindir = base / "bin"
    bindir.mkdir()
    for program in binaries.REQUIRED:
        if program != "initdb":
            (bindir / program).symlink_to(real.path(program))
    hangs = bindir / "initdb"
    hangs.write_text("#!/bin/sh\nexec tail -f /dev/null\n")  # an initdb that never returns
    hangs.chmod(hangs.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    settings = pgstandby_settings.with_overrides(backend="local", pg_bin=str(bindir), timeout=2)
    with pytest.raises(WaitTimeoutError) as info:
        build_cluster(settings)
    first = str(info.value).splitlines()[0]
    assert first.startswith("timed out after 2s waiting for `") and "initdb" in first
    assert "Fix:" in str(info.value) and "--pgstandby-timeout" in str(info.value)
    assert _left(base) == ["bin", "precious.txt"]
    assert processes_under(base) == []
    assert sorted(os.listdir(bindir)) == sorted(binaries.REQUIRED)


def test_a_space_in_the_temp_dir_is_quoted_everywhere(monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 20 #4: the socket DSN was built unquoted (`missing "=" after "space/..."`), and
    every build waited out its timeout."""
    made = Path(tempfile.mkdtemp(prefix="with space-"))
    made.chmod(0o755)
    monkeypatch.setenv("PGSTANDBY_TMPDIR", str(made))
    try:
        with build_cluster(Settings(backend="local", timeout=20)) as cluster:
            assert " " in cluster.standby.data_dir
            cluster.primary.execute("CREATE TABLE t AS SELECT 1 AS x")
            cluster.primary.wait_for_catchup(cluster.standby)
            assert cluster.standby.execute("SELECT x FROM t") == [(1,)]
    finally:
        shutil.rmtree(made, ignore_errors=True)


@pytest.fixture
def mounted(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str], Path]]:
    """A tmpfs of the test's own as PGSTANDBY_TMPDIR, mounted with the options given
    (``ro``, ``size=12m``); unmounted after. Mounting needs root: CI runs this as root."""
    if os.geteuid() != 0:
        pytest.skip("mounting a filesystem needs root (CI runs this suite as root)")
    made: list[Path] = []

    def mount(options: str) -> Path:
        point = Path(tempfile.mkdtemp(prefix="bad-fs-"))
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"{options},mode=1777", "tmpfs", str(point)],
            check=True,
        )
        made.append(point)
        monkeypatch.setenv("PGSTANDBY_TMPDIR", str(point))
        return point

    yield mount
    for point in made:
        subprocess.run(["umount", str(point)], check=True)
        point.rmdir()


@pytest.mark.parametrize(
    ("options", "said", "fix"),
    [
        ("ro,size=1m", "is read-only (Read-only file system)", "Fix: set PGSTANDBY_TMPDIR"),
        # initdb's first WAL segment (16 MB) does not fit
        ("size=12m", "is full (No space left on device)", "Fix: free space there (`df -h"),
    ],
    ids=["read-only", "full"],
)
def test_a_readonly_or_full_tmpdir_is_named_in_one_line_with_the_fix(
    mounted: Callable[[str], Path],
    pgstandby_settings: Settings,
    options: str,
    said: str,
    fix: str,
) -> None:
    """Issue 20 #7: a 62-line traceback ending in `OSError: [Errno 30]`, and "`cp -a ...`
    exited with status 1" with no cause or fix."""
    point = mounted(options)
    with pytest.raises(SetupFailedError) as raised:
        build_cluster(pgstandby_settings.with_overrides(backend="local"))
    first = str(raised.value).splitlines()[0]
    assert f"the filesystem of the harness's temporary directory {point} {said}" in first
    assert fix in first, first
    assert processes_under(point) == []
    left = [p.name for p in point.rglob("*") if not p.name.endswith(".lock")]
    assert left in ([], [f"{HOME_PREFIX}0"]), left
