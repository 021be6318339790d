"""Lag you can look at: a live table (``pgstandby lab status --watch``), a recording drawn
as a PNG of the primary's insert LSN against the standby's replay LSN (``pgstandby lag``,
``pgstandby lab lag``), and the same picture's data for a failing assert_replication_lag.

>>> series = record(primary, standby, seconds=5, load=True)  # doctest: +SKIP
>>> write_png(series, "lag.png")  # doctest: +SKIP
2

matplotlib is imported only when a picture is drawn: it is the ``[plot]`` extra, and it
costs ~0.5 s to import.
"""

from __future__ import annotations

import contextlib
import importlib.util
import sys
import threading
import time
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg

from .._held import HeldConnection
from .._text import human_bytes
from .._wait import connect_budget
from ..assertions.lag import LagSample, lsn_bytes
from ..assertions.report import error_text
from ..assertions.walsenders import receiver_app_name
from ..errors import PgStandbyError
from ..node import Node, ServerLike, as_node

#: The table ``load=True`` writes to on the primary (created if missing, dropped after).
LOAD_TABLE = "pgstandby_lag_load"
SPARKS = "▁▂▃▄▅▆▇█"
SPARK_WIDTH = 20
QUERY_BOUND = 5  # seconds any one sample's query may take (a frozen server is cut off)
PLOT_FIX = "Fix: pip install 'pytest-pgstandby[plot]'"

# Standby first, then the primary: the primary's position is then never behind the
# standby's, and the byte lag is pg_wal_lsn_diff of what both said just now.
_STANDBY_SQL = "SELECT pg_last_wal_replay_lsn()::text"
# (one call of the volatile insert LSN: two calls in one row differ under load)
_PRIMARY_SQL = """
SELECT now.lsn::text, pg_wal_lsn_diff(now.lsn, %(replay)s::pg_lsn)::bigint,
       (SELECT CASE WHEN count(*) = 1 THEN max(replay_lag) END FROM pg_stat_replication
         WHERE application_name = %(name)s AND state <> 'backup')
FROM (SELECT pg_current_wal_insert_lsn() AS lsn) AS now
"""
_LOAD_SQL = f"INSERT INTO {LOAD_TABLE} (filler) SELECT repeat('x', 100) FROM generate_series(1, %s)"
LOAD_ROWS = 500  # rows per statement of the writer (~120 KB of WAL)
# between statements: ~6 MB of WAL a second, enough to see replay trail behind, not so
# much that a 10 s recording fills a /dev/shm data directory (unpaced: ~60 MB/s here)
LOAD_PAUSE = 0.02


class LagViewError(PgStandbyError):
    """A server stopped answering while lag was sampled, or is not what its role says."""


@dataclass
class LagSeries:
    """What :func:`record` saw: ``samples`` in time order, and the load it wrote."""

    primary: str  # labels, passwords masked
    standby: str
    samples: list[LagSample] = field(default_factory=list)
    primary_lsn_kind: str = "insert"  # the assertion samples pg_current_wal_lsn: "write"
    rows_written: int = 0

    def max_lag(self) -> LagSample | None:
        """The sample with the largest byte lag, or None when no byte lag was measured."""
        known = [s for s in self.samples if s.lag_bytes is not None]
        return max(known, key=lambda s: s.lag_bytes or 0) if known else None


class _Sampler:
    """One held connection to each side; :meth:`sample` asks both once."""

    def __init__(self, primary: Node, standby: Node) -> None:
        self.primary, self.standby = primary, standby
        self.pconn = HeldConnection(primary.connect, connect_budget(QUERY_BOUND))
        self.sconn = HeldConnection(standby.connect, connect_budget(QUERY_BOUND))
        self.started = time.monotonic()
        self.last: LagSample | None = None
        self.count = 0
        try:
            self.app_name = self._check_roles()
        except BaseException:
            self.close()
            raise

    def _ask(self, which: str, sql: str, params: Any = None) -> tuple[Any, ...]:
        node, held = (
            (self.primary, self.pconn) if which == "primary" else (self.standby, self.sconn)
        )
        try:
            row = held.row(sql, params)
        except (psycopg.Error, OSError) as exc:
            raise LagViewError(self._gone(which, node, exc)) from None
        assert row is not None  # every query here returns one row
        return row

    def _gone(self, which: str, node: Node, exc: BaseException) -> str:
        last = self.last
        seen = (
            f"after {self.count} samples; last seen: primary {last.primary_lsn}, "
            f"standby replay {last.standby_lsn}"
            if last
            else "before the first sample"
        )
        return (
            f"the {which} {node.label} stopped answering ({error_text(exc)}) {seen}. "
            f"Fix: check that it runs (its log, pg_ctl status or docker ps), then run again"
        )

    def _check_roles(self) -> str:
        if self._ask("primary", "SELECT pg_is_in_recovery()")[0]:
            raise LagViewError(
                f"the primary {self.primary.label} is in recovery: it is a standby. "
                "Fix: pass the primary's DSN as the primary, the standby's as the standby"
            )
        recovery, receiver, cluster = self._ask(
            "standby",
            "SELECT pg_is_in_recovery(), (SELECT conninfo FROM pg_stat_wal_receiver), "
            "current_setting('cluster_name')",
        )
        if not recovery:
            raise LagViewError(
                f"the standby {self.standby.label} is not in recovery (no replay LSN): it is "
                "a primary. Fix: pass a standby's DSN as the standby"
            )
        # the walsender is named after the standby's conninfo; cluster_name when it has none
        return receiver_app_name(None, receiver, cluster or "")

    def sample(self) -> LagSample:
        t = time.monotonic() - self.started
        (replay,) = self._ask("standby", _STANDBY_SQL)
        insert, diff, replay_lag = self._ask(
            "primary", _PRIMARY_SQL, {"replay": replay, "name": self.app_name}
        )
        lag = max(0, int(diff)) if diff is not None else None
        self.last = LagSample(t, insert, replay, lag, replay_lag)
        self.count += 1
        return self.last

    def close(self) -> None:
        self.pconn.close()
        self.sconn.close()


class _Writer(threading.Thread):
    """Writes on the primary until stopped: batches of rows into LOAD_TABLE."""

    def __init__(self, primary: Node) -> None:
        super().__init__(name="pgstandby-lag-load", daemon=True)
        self.primary = primary
        self.stopping = threading.Event()
        self.rows = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            with self.primary.connect(application_name="pgstandby-lag-load") as conn:
                while not self.stopping.wait(LOAD_PAUSE):
                    conn.execute(_LOAD_SQL, [LOAD_ROWS])
                    self.rows += LOAD_ROWS
        except (psycopg.Error, OSError) as exc:
            self.error = exc


def record(
    primary: ServerLike,
    standby: ServerLike,
    *,
    seconds: float,
    load: bool = False,
    interval: float = 0.1,
) -> LagSeries:
    """Sample both ends every ``interval`` seconds for ``seconds``; with ``load``, a writer
    thread inserts into ``pgstandby_lag_load`` on the primary meanwhile (created if
    missing, dropped after). Raises :class:`LagViewError` if a side stops answering."""
    p, s = as_node(primary, "primary"), as_node(standby, "standby")
    sampler = _Sampler(p, s)
    series = LagSeries(p.label, s.label)
    writer = _Writer(p) if load else None
    try:
        series.samples.append(sampler.sample())
        if writer is not None:
            _create_load_table(p)
            writer.start()
        for due in _schedule(sampler.started, seconds, interval):
            time.sleep(max(0.0, due - time.monotonic()))
            series.samples.append(sampler.sample())
    finally:
        if writer is not None:
            writer.stopping.set()
            if writer.is_alive():
                writer.join(QUERY_BOUND * 2)
            series.rows_written = writer.rows
            _drop_load_table(p)
        sampler.close()
    if writer is not None and writer.error is not None:
        raise LagViewError(
            f"the load on the primary {p.label} failed: {error_text(writer.error)}. "
            f"Fix: the DSN's user needs CREATE on the public schema (or run without --load)"
        )
    return series


def _schedule(started: float, seconds: float, interval: float) -> Iterable[float]:
    """Due times of the samples after the first, ``interval`` apart, up to ``seconds``."""
    n = 1
    while n * interval <= seconds + 1e-9:
        yield started + n * interval
        n += 1


def _create_load_table(primary: Node) -> None:
    try:
        primary.execute(
            f"CREATE TABLE IF NOT EXISTS {LOAD_TABLE} (id bigserial PRIMARY KEY, "
            "written_at timestamptz DEFAULT clock_timestamp(), filler text)"
        )
    except psycopg.Error as exc:
        raise LagViewError(
            f"cannot create {LOAD_TABLE} on the primary {primary.label}: {error_text(exc)}. "
            "Fix: connect as a user with CREATE on the public schema, or run without --load"
        ) from None


def _drop_load_table(primary: Node) -> None:
    # a primary that stopped answering: the error that ended the recording says so
    with contextlib.suppress(psycopg.Error):
        primary.execute(f"DROP TABLE IF EXISTS {LOAD_TABLE}")


# text ---------------------------------------------------------------------------------


def human_lag(lag: timedelta | None) -> str:
    """pg_stat_replication.replay_lag: None (the primary has no estimate: no walsender, or
    nothing to replay lately) -> ``'-'``."""
    return "-" if lag is None else f"{lag.total_seconds():.3f} s"


def sparkline(values: Sequence[int | None]) -> str:
    """One block per value, scaled to the largest; unknown values are blanks.

    >>> sparkline([0, 4, 8, None])
    '▁▅█ '
    """
    top = max((v for v in values if v is not None), default=0)
    marks = []
    for v in values:
        if v is None:
            marks.append(" ")
        else:
            marks.append(SPARKS[round(v / top * (len(SPARKS) - 1)) if top else 0])
    return "".join(marks)


_ROW = "{:<12} {:>16} {:>16} {:>11} {:>10}  {}"


def _row(when: str, s: LagSample, recent: Sequence[int | None]) -> str:
    return _ROW.format(
        when,
        s.primary_lsn or "-",
        s.standby_lsn or "-",
        human_bytes(s.lag_bytes),
        human_lag(s.replay_lag),
        sparkline(recent),
    )


def watch(
    primary: ServerLike, standby: ServerLike, *, interval: float = 1.0, count: int | None = None
) -> int:
    """Print a header, then one row per ``interval``: time, the primary's insert LSN, the
    standby's replay LSN, the byte lag, pg_stat_replication.replay_lag and a sparkline of
    the recent byte lags. Stops after ``count`` rows or at Ctrl-C (0); a side that stops
    answering ends it with one line on stderr (1)."""
    p, s = as_node(primary, "primary"), as_node(standby, "standby")
    print(f"primary {p.label}\nstandby {s.label}")
    print(_ROW.format("time", "primary insert", "standby replay", "byte lag", "replay_lag", ""))
    sampler: _Sampler | None = None
    recent: deque[int | None] = deque(maxlen=SPARK_WIDTH)
    try:
        sampler = _Sampler(p, s)
        rows = 0
        while count is None or rows < count:
            if rows:
                time.sleep(max(0.0, sampler.started + rows * interval - time.monotonic()))
            sample = sampler.sample()
            recent.append(sample.lag_bytes)
            now = time.time()
            when = time.strftime("%H:%M:%S", time.localtime(now)) + f".{int(now % 1 * 10)}"
            print(_row(when, sample, recent), flush=True)
            rows += 1
    except KeyboardInterrupt:
        return 0
    except LagViewError as exc:
        print(f"pgstandby: {exc}", file=sys.stderr, flush=True)
        return 1
    finally:
        if sampler is not None:
            sampler.close()
    return 0


def lag_command(
    primary: ServerLike, standby: ServerLike, *, seconds: float, load: bool, out: str
) -> int:
    """``pgstandby lag``: record, draw ``out``, print what was seen. A side that stops
    answering ends it with one line on stderr (1), Ctrl-C too (130); without matplotlib
    a PgStandbyError says how to install it, before anything is recorded."""
    ensure_matplotlib()  # before a recording that could not be drawn
    try:
        series = record(primary, standby, seconds=seconds, load=load)
    except LagViewError as exc:
        print(f"pgstandby: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("pgstandby: interrupted; nothing drawn", file=sys.stderr)
        return 130
    drawn = write_png(series, out)
    for line in summary(series):
        print(line)
    print(f"wrote {out}: {drawn} series (primary insert LSN, standby replay LSN) and byte lag")
    return 0


def summary(series: LagSeries) -> list[str]:
    """What a recording saw, in three lines."""
    samples = series.samples
    first, last = samples[0], samples[-1]
    load = f"; load: {series.rows_written} rows written" if series.rows_written else ""
    worst = series.max_lag()
    lags = [s.replay_lag for s in samples if s.replay_lag is not None]
    return [
        f"samples: {len(samples)} over {last.t - first.t:.1f} s{load}",
        f"primary insert LSN {first.primary_lsn} -> {last.primary_lsn} "
        f"(+{human_bytes(_advance(first.primary_lsn, last.primary_lsn))}); standby replay LSN "
        f"{first.standby_lsn} -> {last.standby_lsn}",
        f"max byte lag: {human_bytes(worst.lag_bytes) if worst else '-'}"
        + (f" at {worst.t:.1f} s" if worst else "")
        + f"; max replay_lag: {human_lag(max(lags) if lags else None)}",
    ]


def _advance(start: str | None, end: str | None) -> int | None:
    return lsn_bytes(end) - lsn_bytes(start) if start and end else None


def section_text(samples: Sequence[LagSample], png: str | None = None, rows: int = 15) -> str:
    """The report section of a failing assert_replication_lag: the samples it took while
    waiting, as a table (at most ``rows``, spread over the wait, first and last included)."""
    n = len(samples)
    shown = (
        samples if n <= rows else [samples[round(i * (n - 1) / (rows - 1))] for i in range(rows)]
    )
    head = f"{n} samples over {samples[-1].t - samples[0].t:.2f} s"
    head += f" (showing {len(shown)})" if len(shown) < n else ""
    lines = [
        head + "; the primary's LSN is pg_current_wal_lsn(), as the check last read it",
        f"{'t (s)':>8} {'primary LSN':>16} {'standby replay':>16} {'byte lag':>11}",
    ]
    lines += [
        f"{s.t:>8.3f} {s.primary_lsn or '-':>16} {s.standby_lsn or '-':>16} "
        f"{human_bytes(s.lag_bytes):>11}"
        for s in shown
    ]
    lines.append(f"picture: {png}" if png else f"picture: matplotlib is not installed. {PLOT_FIX}")
    return "\n".join(lines)


# picture ------------------------------------------------------------------------------


def can_plot() -> bool:
    """Whether matplotlib (the ``[plot]`` extra) is installed."""
    return importlib.util.find_spec("matplotlib") is not None


def ensure_matplotlib() -> None:
    if not can_plot():
        raise PgStandbyError(f"matplotlib is not installed. {PLOT_FIX}")


def write_png(series: LagSeries, path: str | Path) -> int:
    """Draw ``series`` to a PNG: the primary's and the standby's LSN (relative to the
    lowest of the first sample) against seconds, and the byte lag below. Returns the
    number of LSN series drawn (2). Needs matplotlib (the ``[plot]`` extra)."""
    ensure_matplotlib()
    import matplotlib

    matplotlib.use("Agg")  # no display: files only
    from matplotlib import pyplot as plt

    samples = series.samples
    base = min(lsn_bytes(v) for v in (samples[0].primary_lsn, samples[0].standby_lsn) if v)
    top = max(lsn_bytes(v) for s in samples for v in (s.primary_lsn, s.standby_lsn) if v) - base
    unit, scale = _unit(top)
    t = [s.t for s in samples]

    def rel(values: Iterable[str | None]) -> list[float]:
        return [(lsn_bytes(v) - base) / scale if v else float("nan") for v in values]

    fig, (above, below) = plt.subplots(
        2, 1, sharex=True, figsize=(9, 6), height_ratios=(2, 1), layout="constrained"
    )
    try:
        # a standby that keeps up draws over the primary: the primary's line is the wider
        primary_lsns = rel(s.primary_lsn for s in samples)
        kind = series.primary_lsn_kind
        drawn = above.plot(t, primary_lsns, linewidth=4, label=f"primary {kind} LSN")
        drawn += above.plot(t, rel(s.standby_lsn for s in samples), label="standby replay LSN")
        above.set_ylabel(f"WAL position ({unit}, from the first sample)")
        above.set_title(f"{series.primary}\n-> {series.standby}", fontsize=8)
        above.legend(loc="best")
        above.grid(alpha=0.3)
        lag_unit, lag_scale = _unit(max((s.lag_bytes or 0 for s in samples), default=0))
        below.plot(
            t,
            [s.lag_bytes / lag_scale if s.lag_bytes is not None else float("nan") for s in samples],
            color="tab:red",
        )
        below.set_ylabel(f"byte lag ({lag_unit})")
        below.set_xlabel("seconds")
        below.grid(alpha=0.3)
        fig.savefig(path, format="png", dpi=100)
    finally:
        plt.close(fig)
    return len(drawn)


def _unit(n: int) -> tuple[str, float]:
    if n >= 1024 * 1024:
        return "MiB", 1024.0 * 1024
    if n >= 1024:
        return "KiB", 1024.0
    return "bytes", 1.0
