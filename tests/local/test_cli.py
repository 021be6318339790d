"""`pgstandby check` grades a running pair from DSNs, as a classroom grader would."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import psycopg

from pytest_pgstandby import Settings, start_cluster
from pytest_pgstandby.backends.local import processes_under


def _check(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest_pgstandby.cli", "check", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_check_passes_a_healthy_pair_and_fails_a_promoted_one(
    pgstandby_settings: Settings,
) -> None:
    with start_cluster(pgstandby_settings, backend="local") as cluster:
        args = (
            f"--primary={cluster.primary.dsn}",
            f"--standby={cluster.standby.dsn}",
            f"--standby-data-dir={cluster.standby.data_dir}",
        )
        healthy = _check(*args)
        assert healthy.returncode == 0, healthy.stdout + healthy.stderr
        assert healthy.stdout.splitlines() == [
            "PASS  standby.signal",
            "PASS  primary_conninfo",
            "PASS  read-only",
            "PASS  streaming",
            "PASS  replication lag",
            "5 passed, 0 failed",
        ]
        cluster.standby.promote()
        broken = _check(*args)
        assert broken.returncode == 1
        assert "FAIL  standby.signal" in broken.stdout
        assert "FAIL  read-only" in broken.stdout
        assert broken.stdout.splitlines()[-1].endswith("failed")


def test_check_without_arguments_is_a_usage_error() -> None:
    result = _check()
    assert result.returncode == 2
    assert "the following arguments are required: --primary, --standby" in result.stderr


def test_pair_holds_a_local_pair_until_interrupted_then_removes_it() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest_pgstandby.cli", "pair", "--backend", "local"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    lines = []
    try:
        for line in proc.stdout:  # bounded by the harness's own startup timeout
            lines.append(line)
            if line.startswith("Ctrl-C"):
                break
        standby_line = next(line for line in lines if line.strip().startswith("standby1"))
        dsn = standby_line.split(None, 1)[1].split("   data:")[0]
        data_dir = Path(standby_line.rsplit("data: ", 1)[1].strip())
        with psycopg.connect(dsn) as conn:
            assert conn.execute("SELECT pg_is_in_recovery()").fetchone() == (True,)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not data_dir.exists()
    assert processes_under(data_dir.parent) == []


def test_pair_refuses_zero_standbys_before_starting_anything() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pytest_pgstandby.cli", "pair", "--standbys", "0"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "standbys=0: a cluster needs at least one standby" in result.stderr
    assert "pair is up" not in result.stdout
