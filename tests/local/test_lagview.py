"""Lag you can look at, on real local servers: `pgstandby lag` draws a PNG of the primary's
insert LSN and the standby's replay LSN, record() sees the primary move under load, and the
live table (watch) prints its rows, stops at Ctrl-C, and ends in one line when the standby
stops."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from matplotlib import image

from pytest_pgstandby import Cluster
from pytest_pgstandby.assertions import Server
from pytest_pgstandby.assertions.lag import lsn_bytes
from pytest_pgstandby.classroom import lagview
from pytest_pgstandby.node import as_node

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# matplotlib's first two colours: the primary's line, then the standby's
PRIMARY_BLUE = (0x1F, 0x77, 0xB4)
STANDBY_ORANGE = (0xFF, 0x7F, 0x0E)
ROW = re.compile(r"^\d\d:\d\d:\d\d\.\d ")


def _pixels_of(path: Path, rgb: tuple[int, int, int]) -> int:
    """How many pixels of the PNG have the colour ``rgb`` (a line's, not antialiased)."""
    img = (image.imread(str(path))[:, :, :3] * 255).round()
    return int((abs(img - rgb).max(axis=2) <= 2).sum())


def test_lag_command_draws_both_lsns_under_load(pair: Cluster, tmp_path: Path) -> None:
    out = tmp_path / "lag.png"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest_pgstandby.cli",
            "lag",
            f"--primary={pair.primary.dsn}",
            f"--standby={pair.standby.dsn}",
            f"--standby-data-dir={pair.standby.data_dir}",
            "--seconds=2",
            "--load",
            f"--out={out}",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    print(result.stdout)
    samples, lsns, worst, wrote = lines
    assert re.fullmatch(r"samples: 21 over 2\.0 s; load: [1-9]\d* rows written", samples)
    first, last = re.findall(r"primary insert LSN (\S+) -> (\S+)", lsns)[0]
    assert lsn_bytes(last) - lsn_bytes(first) > 1024 * 1024, lsns  # the load moved it
    assert worst.startswith("max byte lag: ")
    assert wrote == f"wrote {out}: 2 series (primary insert LSN, standby replay LSN) and byte lag"
    data = out.read_bytes()
    assert data.startswith(PNG_SIGNATURE) and len(data) > 20_000
    # both lines are in the picture, not only in the legend (a legend's stroke is ~60 px)
    assert _pixels_of(out, PRIMARY_BLUE) > 300
    assert _pixels_of(out, STANDBY_ORANGE) > 300
    # the load's table is gone again
    assert pair.primary.query_value(f"SELECT to_regclass('{lagview.LOAD_TABLE}')") is None


def test_record_follows_the_primary_and_the_standby_under_load(
    pair: Cluster, tmp_path: Path
) -> None:
    series = lagview.record(pair.primary, pair.standby, seconds=1.0, load=True, interval=0.1)
    samples = series.samples
    assert len(samples) == 11
    assert series.rows_written > 0
    assert [s.t for s in samples] == sorted(s.t for s in samples)
    assert samples[-1].t >= 1.0
    start, end = samples[0], samples[-1]
    assert start.primary_lsn and end.primary_lsn and start.standby_lsn and end.standby_lsn
    # every row the writer inserted is in WAL: ~100 bytes of text each, and more
    advanced = lsn_bytes(end.primary_lsn) - lsn_bytes(start.primary_lsn)
    assert advanced > series.rows_written * 100
    assert lsn_bytes(end.standby_lsn) > lsn_bytes(start.standby_lsn)  # replay followed
    for s in samples:
        assert s.primary_lsn and s.standby_lsn and s.lag_bytes is not None
        # pg_wal_lsn_diff of the same two positions, standby read first
        assert s.lag_bytes == lsn_bytes(s.primary_lsn) - lsn_bytes(s.standby_lsn) >= 0
    assert lagview.write_png(series, tmp_path / "direct.png") == 2
    assert (tmp_path / "direct.png").read_bytes().startswith(PNG_SIGNATURE)


def test_watch_prints_count_rows_with_a_sparkline(
    pair: Cluster, capsys: pytest.CaptureFixture[str]
) -> None:
    primary, standby = Server(pair.primary.dsn), Server(pair.standby.dsn)
    assert lagview.watch(primary, standby, interval=0.05, count=3) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("primary ") and lines[1].startswith("standby ")
    assert lines[2].split() == ["time", "primary", "insert", "standby", "replay", "byte", "lag",
                                "replay_lag"]  # fmt: skip
    rows = lines[3:]
    assert len(rows) == 3 and all(ROW.match(row) for row in rows), rows
    for n, row in enumerate(rows, start=1):
        spark = row.split()[-1]
        assert len(spark) == n and set(spark) <= set(lagview.SPARKS), row  # one per row so far
        lsns = re.findall(r"\b[0-9A-F]+/[0-9A-F]+\b", row)
        assert len(lsns) == 2, row


@contextmanager
def _watching(primary: str, standby: str) -> Iterator[subprocess.Popen[str]]:
    """``watch`` in a process of its own (killed after 60 s should it hang)."""
    code = (
        # Ctrl-C as a terminal sends it, even where this run inherited SIGINT ignored (a
        # background job): the child takes the default handler back first
        "import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
        "from pytest_pgstandby.classroom import lagview; "
        "from pytest_pgstandby.assertions import Server; "
        "sys.exit(lagview.watch(Server(sys.argv[1]), Server(sys.argv[2]), interval=0.1))"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code, primary, standby],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    guard = threading.Timer(60, proc.kill)
    guard.start()
    try:
        yield proc
    finally:
        guard.cancel()
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def _rows(proc: subprocess.Popen[str], n: int) -> list[str]:
    """Read the watch's output until ``n`` rows have come."""
    assert proc.stdout is not None
    rows: list[str] = []
    for line in proc.stdout:
        if ROW.match(line):
            rows.append(line)
            if len(rows) == n:
                break
    assert len(rows) == n, f"the watch ended after {rows}"
    return rows


def test_watch_stops_at_ctrl_c_with_status_0(pair: Cluster) -> None:
    with _watching(pair.primary.dsn, pair.standby.dsn) as proc:
        _rows(proc, 2)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
        assert proc.stderr is not None and proc.stderr.read() == ""


def test_a_standby_that_stops_ends_the_watch_in_one_line(make_cluster) -> None:  # type: ignore[no-untyped-def]
    with make_cluster() as cluster, _watching(cluster.primary.dsn, cluster.standby.dsn) as proc:
        _rows(proc, 2)
        cluster.standby.stop()
        assert proc.wait(timeout=30) == 1
        assert proc.stderr is not None
        err = proc.stderr.read().splitlines()
        assert len(err) == 1, err
        label = as_node(Server(cluster.standby.dsn)).label  # the DSN, password masked
        assert err[0].startswith(f"pgstandby: the standby {label} stopped answering (")
        assert "after " in err[0] and "samples; last seen: primary " in err[0]
        assert "Fix: check that it runs" in err[0]


def test_without_matplotlib_the_lag_command_says_how_to_install_it() -> None:
    # matplotlib made unimportable in a process of its own; the DSNs are never used, since
    # the command refuses before it records what it could not draw
    code = (
        "import sys; sys.modules['matplotlib'] = None; from pytest_pgstandby import cli; "
        "sys.exit(cli.main(['lag', '--primary=host=127.0.0.1 port=1',"
        " '--standby=host=127.0.0.1 port=2', '--seconds=1']))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr == (
        "pgstandby: error: matplotlib is not installed. Fix: pip install 'pytest-pgstandby[plot]'\n"
    )
