"""The one way a bench reports: a min / median / max table, the ratio of two medians, and
the raw numbers as JSON."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from pathlib import Path


def pytest_run(directory: Path, *args: str) -> float:
    """Wall time of one whole ``pytest -q`` run in ``directory`` (it must pass)."""
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
        cwd=directory,
        capture_output=True,
        text=True,
        timeout=900,
    )
    if done.returncode != 0:
        tail = "\n".join(done.stdout.splitlines()[-15:])
        sys.exit(f"pytest {' '.join(args)} in {directory} failed ({done.returncode}):\n{tail}")
    return time.perf_counter() - started


def report(
    times: dict[str, list[float]],
    ratio_of: tuple[str, str],
    json_path: str,
    title: str,
    against_all: bool = False,
) -> float:
    """Print the table and ``median(ratio_of[0]) / median(ratio_of[1])`` (and against
    every other row too with ``against_all``); write JSON."""
    print(title)
    print(f"{'':14} {'min':>7} {'median':>7} {'max':>7}")
    for name, values in times.items():
        low, mid, high = min(values), statistics.median(values), max(values)
        print(f"{name:14} {low:6.2f}s {mid:6.2f}s {high:6.2f}s")
    top, bottom = ratio_of
    ratio = statistics.median(times[top]) / statistics.median(times[bottom])
    print(f"ratio of medians {top} / {bottom}: {ratio:.2f}")
    for other in [t for t in times if against_all and t not in (top, bottom)]:
        extra = statistics.median(times[top]) / statistics.median(times[other])
        print(f"ratio of medians {top} / {other}: {extra:.2f}")
    out = Path(json_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({**times, "ratio": ratio}))
    print(f"raw numbers: {out}")
    return ratio
