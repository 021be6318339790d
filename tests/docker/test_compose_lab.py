"""The classroom lab end to end: lab/docker-compose.yml on the lab image.

Builds (or reuses) pgstandby/postgres:15 with lab/image/build.sh, brings the compose lab
up under a project name of its own with free host ports on 127.0.0.1, waits until the
standby streams, writes on the primary and reads it back on the standby, checks
standby.signal, then `down -v` and checks that nothing of the project is left.

Skipped (with the reason) only when no Docker daemon answers.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psycopg
import pytest

from pytest_pgstandby._wait import poll_until
from pytest_pgstandby.backends.ports import free_port
from tests.docker.compose import PASSWORD, PGDATA, POLL_INTERVAL, WAIT_TIMEOUT, ComposeLab
from tests.docker.compose import run as _run
from tests.docker.compose import tail as _tail
from tests.helpers import EXTERNAL_DOWNSTREAM_TEST

pytestmark = pytest.mark.docker


def _started_at(container: str) -> str:
    out = _run(
        ["docker", "inspect", "--format", "{{.State.Status}} {{.State.StartedAt}}", container]
    )
    return out.stdout.strip()


def _lag_of_the_lab(lab: ComposeLab, tmp: Path) -> None:
    """`lab lag` draws the lab pair's LSNs under load; `lab status --watch` shows rows."""
    png = tmp / "lab-lag.png"
    cli = [sys.executable, "-m", "pytest_pgstandby.cli", "lab"]
    drawn = subprocess.run(
        [*cli, "lag", "--seconds", "2", "--load", "--out", str(png)],
        env=lab.env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert drawn.returncode == 0, drawn.stdout + drawn.stderr
    assert "2 series" in drawn.stdout
    assert png.read_bytes().startswith(b"\x89PNG\r\n\x1a\n") and png.stat().st_size > 10_000
    watched = subprocess.run(
        [*cli, "status", "--watch", "--interval", "0.2", "--count", "3"],
        env=lab.env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert watched.returncode == 0, watched.stdout + watched.stderr
    rows = [ln for ln in watched.stdout.splitlines() if ln[:1].isdigit()]
    assert len(rows) == 3, watched.stdout


def _downstream_against_the_lab(lab: ComposeLab, pytester: pytest.Pytester) -> None:
    """A downstream test file, fixtures only, against the running lab pair (the external
    backend): it passes, and the lab's containers are the same ones afterwards."""
    names = (lab.primary, lab.standby)
    before = [_started_at(name) for name in names]
    dsn = "host=127.0.0.1 port={} user=postgres password=" + PASSWORD + " dbname=postgres"
    pytester.makepyfile(test_downstream=EXTERNAL_DOWNSTREAM_TEST)
    result = pytester.runpytest_subprocess(
        "-p",
        "no:cacheprovider",
        f"--pgstandby-primary-dsn={dsn.format(lab.primary_port)}",
        f"--pgstandby-primary-container={lab.primary}",
        f"--pgstandby-standby-dsn={dsn.format(lab.standby_port)}",
        f"--pgstandby-standby-container={lab.standby}",
    )
    result.assert_outcomes(passed=4)
    assert "********" in result.stdout.str() and PASSWORD + " dbname" not in result.stdout.str()
    assert [_started_at(name) for name in names] == before
    assert before[0].startswith("running") and before[1].startswith("running")


def test_compose_lab_replicates_and_leaves_nothing_behind(
    lab_image: str, pytester: pytest.Pytester
) -> None:
    lab = ComposeLab(
        f"pgstandby-test-{os.getpid()}-{uuid.uuid4().hex[:8]}", free_port(), free_port()
    )
    token = uuid.uuid4().hex
    started = time.monotonic()
    try:
        up = lab.run("up", "-d")
        assert up.returncode == 0, (
            f"docker-compose up -d exited {up.returncode}\n{_tail(up.stderr)}\n{lab.logs()}"
        )
        lab.remember_volumes()

        def standby_streaming() -> tuple[bool, str] | None:
            with lab.connect(lab.standby_port) as conn:
                row = conn.execute(
                    "SELECT pg_is_in_recovery(), (SELECT status FROM pg_stat_wal_receiver)"
                ).fetchone()
            if row != (True, "streaming"):
                raise RuntimeError(f"standby reports (in_recovery, wal receiver) = {row}")
            return row

        poll_until(
            standby_streaming,
            what="the standby to be in recovery with its WAL receiver streaming",
            timeout=WAIT_TIMEOUT,
            interval=POLL_INTERVAL,
            log=lab.logs,
        )
        print(f"compose up -> standby streaming in {time.monotonic() - started:.1f} s")

        with lab.connect(lab.primary_port) as primary:
            replication = primary.execute("SELECT state FROM pg_stat_replication").fetchall()
            assert ("streaming",) in replication, replication
            primary.execute("CREATE TABLE lab_check (id int PRIMARY KEY, note text NOT NULL)")
            primary.execute("INSERT INTO lab_check VALUES (1, %s)", (token,))

        def row_on_standby() -> str | None:
            with lab.connect(lab.standby_port) as conn:
                row = conn.execute("SELECT note FROM lab_check WHERE id = 1").fetchone()
            return row[0] if row else None

        seen = poll_until(
            row_on_standby,
            what="the row written on the primary to be visible on the standby",
            timeout=WAIT_TIMEOUT,
            interval=POLL_INTERVAL,
            log=lab.logs,
        )
        assert seen == token

        with (
            lab.connect(lab.standby_port) as standby,
            pytest.raises(psycopg.errors.ReadOnlySqlTransaction),
        ):
            standby.execute("INSERT INTO lab_check VALUES (2, 'must fail')")

        signal = _run(["docker", "exec", lab.standby, "test", "-f", f"{PGDATA}/standby.signal"])
        assert signal.returncode == 0, (
            f"{PGDATA}/standby.signal is missing in {lab.standby}: {signal.stderr}\n{lab.logs()}"
        )

        # the classroom grader: the assertion helpers on the student's running pair
        graded = subprocess.run(
            [sys.executable, "-m", "pytest_pgstandby.cli", "lab", "check"],
            env=lab.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert graded.returncode == 0, graded.stdout + graded.stderr
        assert graded.stdout.splitlines()[-1] == "5 passed, 0 failed"
        # ...and `pgstandby check` exactly as the README shows it: DSNs and the standby's
        # container only (the primary's container is found by the port it publishes)
        dsn = "host=127.0.0.1 port={} user=postgres password=" + PASSWORD
        readme_form = subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest_pgstandby.cli",
                "check",
                "--primary",
                dsn.format(lab.primary_port),
                "--standby",
                dsn.format(lab.standby_port),
                "--standby-container",
                lab.standby,
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert readme_form.returncode == 0, readme_form.stdout + readme_form.stderr
        assert readme_form.stdout.splitlines()[-1] == "5 passed, 0 failed"

        _lag_of_the_lab(lab, pytester.path)
        _downstream_against_the_lab(lab, pytester)
        poll_until(
            standby_streaming,
            what="the lab's standby, untouched by the external run, to stream still",
            timeout=WAIT_TIMEOUT,
            interval=POLL_INTERVAL,
            log=lab.logs,
        )
    finally:
        lab.remember_volumes()
        try:
            down = lab.run("down", "-v", "--remove-orphans")
        except subprocess.TimeoutExpired as exc:
            down = subprocess.CompletedProcess(exc.cmd, -1, "", f"timed out: {exc}")

    assert down.returncode == 0, f"docker-compose down -v failed:\n{down.stderr}"
    left = lab.leftovers()
    assert not left, f"compose project {lab.project} left resources behind: {left}"
