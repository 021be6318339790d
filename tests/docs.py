"""docs/assertions.md shows real failure messages. Tests that provoke those failures call
``assert_documented(message)``: the documented example whose first line matches must say
the same, line for line, once ports, LSNs, pids, timings, temporary paths and random
names are folded (they differ from run to run; the words must not)."""

from __future__ import annotations

import re
from pathlib import Path

DOCS = Path(__file__).resolve().parents[1] / "docs" / "assertions.md"

_FOLD = [
    # a session dir (in the account's private dir, pgstandby-uid<N>)
    (re.compile(r"(?:/[\w.-]+)*/pgstandby-[A-Za-z0-9_]+"), "<root>"),
    (re.compile(r"pgstandby-[0-9a-f]{10}-"), "pgstandby-<cluster>-"),
    (re.compile(r"pgstandby_ro_probe_[0-9a-f]+"), "pgstandby_ro_probe_<id>"),
    (re.compile(r"\b[0-9A-F]+/[0-9A-F]+\b"), "<lsn>"),
    # observed values that may or may not have been reported yet at that instant
    (re.compile(r"\b(None|\d+:\d\d:\d\d(\.\d+)?)\b"), "<value>"),
    (re.compile(r"<lsn>|<value>"), "<value>"),
    (re.compile(r"\d+(\.\d+)?"), "N"),
]


def fold(line: str) -> str:
    line = re.sub(r"^E\s{0,11}", "", line.rstrip())  # pytest's "E   " prefix
    for pattern, repl in _FOLD:
        line = pattern.sub(repl, line)
    return line


def documented_blocks() -> list[list[str]]:
    """Every fenced block of the doc that holds a message (first line names a check)."""
    blocks, current, inside = [], [], False
    for line in DOCS.read_text().splitlines():
        if line.startswith("```"):
            if inside and current:
                blocks.append(current)
            current, inside = [], not inside
        elif inside and not (not current and line.startswith(">")):
            current.append(line)  # (pytest's "> call(...)" line before the message is not)
    return [b for b in blocks if re.match(r"(E\s+\S+: )?(assert_\w+ failed for|timed out)", b[0])]


def _first(lines: list[str]) -> str:
    return fold(re.sub(r"^E\s+pytest_pgstandby\.\S+: ", "", lines[0]))


def assert_documented(message: str) -> None:
    """The doc shows this message (folded), or says so: which block differs, and how."""
    got = [fold(line) for line in message.splitlines()]
    got[0] = _first(message.splitlines())
    candidates = [b for b in documented_blocks() if _first(b) == got[0]]
    assert candidates, f"no example in {DOCS.name} starts like:\n  {got[0]}\nmessage:\n{message}"
    shown = [[_first(b)] + [fold(line) for line in b[1:]] for b in candidates]
    assert got in shown, (
        f"{DOCS.name} shows this message differently; update the example.\n"
        f"code prints (folded):\n  "
        + "\n  ".join(got)
        + "\ndoc shows (folded):\n  "
        + "\n\n  ".join("\n  ".join(s) for s in shown)
    )
