"""Where the lab files are: inside the wheel (``pytest_pgstandby/lab``) or in the checkout."""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def lab_dir() -> Path:
    for candidate in (_PACKAGE / "lab", _PACKAGE.parent / "lab"):
        if (candidate / "setup-standby.sh").is_file():
            return candidate
    raise FileNotFoundError(
        f"lab scripts not found next to {_PACKAGE}; the installation is incomplete. "
        "Fix: reinstall pytest-pgstandby."
    )


def lab_file(name: str) -> Path:
    """A file of ``lab/``, e.g. ``lab_file("setup-standby.sh")``."""
    return lab_dir() / name
