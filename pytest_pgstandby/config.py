"""One frozen Settings object, resolved once: CLI > marker > ini > env > default."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

from .errors import ConfigurationError

BACKENDS = ("auto", "local", "docker")
KEEP = ("never", "on-failure", "always")
DEFAULT_IMAGE = "postgres:17"


@dataclass(frozen=True)
class Settings:
    """Everything that decides how a cluster is built.

    ``backend``: where nodes live (``auto`` picks Docker when a daemon answers and the image
    is present, else local). ``keep``: leave servers and directories behind for inspection.
    """

    backend: str = "auto"
    pg_bin: str | None = None
    keep: str = "never"
    image: str = DEFAULT_IMAGE
    standbys: int = 1
    timeout: float = 60.0

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ConfigurationError(
                f"unknown backend {self.backend!r}. Fix: --pgstandby-backend / "
                f"PGSTANDBY_BACKEND / ini pgstandby_backend takes one of {', '.join(BACKENDS)}."
            )
        if self.keep not in KEEP:
            raise ConfigurationError(
                f"unknown keep mode {self.keep!r}. Fix: --pgstandby-keep takes one of "
                f"{', '.join(KEEP)}."
            )
        if self.standbys < 1:
            raise ConfigurationError(
                f"standbys={self.standbys}: a cluster needs at least one standby. "
                "Fix: --pgstandby-standbys 1 or more."
            )
        if self.timeout <= 0:
            raise ConfigurationError(f"timeout={self.timeout}: must be a positive number.")

    def with_overrides(self, **overrides: Any) -> Settings:
        known = {f.name for f in fields(self)}
        unknown = set(overrides) - known
        if unknown:
            raise ConfigurationError(
                f"unknown pgstandby setting(s) {', '.join(sorted(unknown))}. "
                f"Known: {', '.join(sorted(known))}."
            )
        return replace(self, **_coerce(overrides))


def _coerce(raw: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if value is None or value == "":
            continue
        try:
            if key == "standbys":
                value = int(value)
            elif key == "timeout":
                value = float(value)
        except ValueError:
            raise ConfigurationError(f"{key}={value!r} is not a number.") from None
        out[key] = value
    return out


def from_sources(
    cli: Callable[[str], Any] | None = None,
    ini: Callable[[str], Any] | None = None,
    env: Mapping[str, str] | None = None,
    marker: Mapping[str, Any] | None = None,
) -> Settings:
    """Merge the sources by precedence CLI > marker > ini > env > default.

    ``cli`` and ``ini`` are lookups by setting name (``None`` or ``""`` means unset).
    """
    env = os.environ if env is None else env
    merged: dict[str, Any] = {}
    for f in fields(Settings):
        env_value = env.get(f"PGSTANDBY_{f.name.upper()}")
        for value in (
            cli(f.name) if cli else None,
            (marker or {}).get(f.name),
            ini(f.name) if ini else None,
            env_value,
        ):
            if value not in (None, ""):
                merged[f.name] = value
                break
    return Settings(**_coerce(merged))
