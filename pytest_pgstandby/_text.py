"""Small text helpers shared by every layer: masking secrets, tailing logs, sizes."""

from __future__ import annotations

import re

# A value may be quoted as libpq quotes it ('...'), quoted again inside a quoted setting
# of postgresql.conf / postgresql.auto.conf (''...'', inner quotes doubled twice), or bare.
_PASSWORD_KV = re.compile(
    r"(password\s*=\s*)(''(?:[^']|'''')*''|'(?:[^'\\]|\\.)*'|[^\s']+)", re.IGNORECASE
)
_PASSWORD_URI = re.compile(r"(postgres(?:ql)?://[^:/@\s]+:)([^@\s]+)(@)")
_PGPASSWORD_ENV = re.compile(r"(PGPASSWORD=)(\S+)")
MASK = "********"


def mask_secrets(text: str) -> str:
    """Replace passwords in conninfo strings, URIs and ``PGPASSWORD=`` assignments.

    >>> mask_secrets("host=a password=s3cret user=b")
    'host=a password=******** user=b'
    """
    text = _PASSWORD_KV.sub(lambda m: m.group(1) + MASK, text)
    text = _PASSWORD_URI.sub(lambda m: m.group(1) + MASK + m.group(3), text)
    return _PGPASSWORD_ENV.sub(lambda m: m.group(1) + MASK, text)


def tail(text: str, lines: int = 30) -> str:
    """The last ``lines`` lines of ``text``, masked, indented for an error message."""
    kept = text.rstrip("\n").splitlines()[-lines:]
    return "\n".join("    " + line for line in mask_secrets("\n".join(kept)).splitlines())


def human_bytes(n: int | float | None) -> str:
    """A size as people read it, in powers of 1024: ``1536`` -> ``'1.5 KiB'``,
    ``512`` -> ``'512 B'``; None -> ``'-'``. The one formatter of sizes and byte lags."""
    if n is None:
        return "-"
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(size) < 1024 or unit == "GiB":
            return f"{int(n)} B" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")
