"""One frozen Settings object, resolved once: CLI > marker > ini > env > default."""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

from .errors import ConfigurationError

BACKENDS = ("auto", "local", "docker", "external")
KEEP = ("never", "on-failure", "always")
FRESH = ("auto", "snapshot", "rebuild")
#: what a failing test's report carries of its clusters (plugin.py)
REPORTS = ("short", "full", "none")
#: documented: the procedure as written (trust lines, the seed's passwords where a lab
#: user expects them); hardened: the same steps given scram-sha-256, random passwords in
#: a 0600 passfile, a slot per standby (docs/profiles.md); auto (the default): documented
#: where only this machine reaches the servers, hardened where other machines do (a
#: remote Docker daemon), so that the seed's trust lines are never an open door
PROFILES = ("auto", "documented", "hardened")


def setting(default: Any, help: str) -> Any:
    """A field of Settings with its help, the one place a setting is described: the
    plugin's options and ini keys take it from here."""
    return field(default=default, metadata={"help": help})


DEFAULT_IMAGE = "postgres:17"
DEFAULT_TIMEOUT = 60.0
#: The shortest bound accepted: below a second, the steps of a build (a server start, a
#: base backup) time out by construction, deep inside a script or a subprocess.
MIN_TIMEOUT = 1.0
#: Settings that hold one value per standby: repeatable options, comma lists elsewhere.
LIST_SETTINGS = ("standby_dsn", "standby_data_dir", "standby_container", "docker_hosts")
# A comma separates two DSNs only where the next one starts (a URI, or a key=value):
# "host=a,b port=5432" is one multi-host DSN, not two.
_SYNC_METHOD = re.compile(r"(?i)(FIRST|ANY) [1-9][0-9]*")
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")
_DSN_SEPARATOR = re.compile(r",\s*(?=postgres(?:ql)?://|[A-Za-z_]+\s*=)")


@dataclass(frozen=True)
class Settings:
    """Everything that decides how a cluster is built.

    ``backend``: where nodes live (``auto`` picks external when ``primary_dsn`` is given,
    else Docker when a daemon answers and the image is present, else local). ``keep``:
    leave servers and directories behind for inspection. ``primary_dsn`` and
    ``standby_dsn`` name servers the harness did not start (the external backend); the
    ``*_data_dir`` / ``*_container`` settings say where their files can be read.
    ``fresh``: how a function-scoped factory cluster is made for each test: ``snapshot``
    (a copy of a pair built once per session; local, and Docker documented), ``rebuild``
    (the scripts every time), ``auto`` (snapshot where the backend can, else rebuild).
    """

    backend: str = setting(
        "auto",
        f"where nodes run: {'|'.join(BACKENDS)} (default auto)",
    )
    pg_bin: str | None = setting(
        None,
        "directory of PostgreSQL server binaries for the local backend, or 'embedded'",
    )
    keep: str = setting(
        "never",
        f"leave servers and files behind: {'|'.join(KEEP)} (default never)",
    )
    image: str = setting(
        DEFAULT_IMAGE,
        "Docker image for the docker backend (default postgres:17)",
    )
    standbys: int = setting(
        1,
        "number of standbys in pgstandby_cluster (default 1)",
    )
    timeout: float = setting(
        DEFAULT_TIMEOUT,
        "seconds any single wait may take (default 60)",
    )
    primary_dsn: str | None = setting(
        None,
        "DSN of a running primary the harness did not start (external backend)",
    )
    primary_data_dir: str | None = setting(
        None,
        "that primary's data directory on this machine",
    )
    primary_container: str | None = setting(
        None,
        "that primary's Docker container",
    )
    standby_dsn: tuple[str, ...] = setting(
        (),
        "DSN of a running standby (repeat, or a comma list, for more)",
    )
    standby_data_dir: tuple[str, ...] = setting(
        (),
        "each standby's data directory on this machine, in order",
    )
    standby_container: tuple[str, ...] = setting(
        (),
        "each standby's Docker container, in order",
    )
    docker_hosts: tuple[str, ...] = setting(
        (),
        "a pool of Docker daemons (DOCKER_HOST values, a comma list): each pytest-xdist "
        "worker builds its clusters on one of them, by its number",
    )
    cascade: bool = setting(
        False,
        "chain the standbys: each streams from the one before (default false)",
    )
    slots: bool = setting(
        False,
        "give each standby a physical replication slot on its upstream (default false)",
    )
    archiving: bool = setting(
        False,
        "archive the primary's WAL into the cluster's archive: archive_mode, an "
        "archive_command, removed with the cluster (default false)",
    )
    synchronous: str | None = setting(
        None,
        "make the primary's standbys synchronous: 'FIRST n' or 'ANY n'",
    )
    fresh: str = setting(
        "auto",
        "function-scoped factory clusters: auto|snapshot|rebuild (default auto: a copy "
        "of a per-session snapshot, local and Docker, documented profile)",
    )
    profile: str = setting(
        "auto",
        "documented (the procedure as written, trust lines included), hardened "
        "(scram-sha-256, random passwords in a 0600 passfile, a slot per standby), or auto "
        "(default: documented where only this machine reaches the servers, else hardened)",
    )
    version: str | None = setting(
        None,
        "PostgreSQL major to run: docker runs the image's repository at that tag "
        "(pgstandby/postgres:13), local picks binaries of that major",
    )
    report: str = setting(
        "short",
        "what a failing test's report carries of its clusters: short (default: one line "
        "per server, and the setup output and last 30 log lines of the nodes the "
        "harness's error names), full (every node's setup output and log tail), or none",
    )

    def __post_init__(self) -> None:
        if self.profile not in PROFILES:
            raise ConfigurationError(
                f"unknown profile {self.profile!r}. Fix: --pgstandby-profile / "
                f"PGSTANDBY_PROFILE / ini pgstandby_profile takes one of {', '.join(PROFILES)} "
                "(docs/profiles.md)."
            )
        if self.report not in REPORTS:
            raise ConfigurationError(
                f"unknown report {self.report!r}. Fix: --pgstandby-report / "
                f"PGSTANDBY_REPORT / ini pgstandby_report takes one of {', '.join(REPORTS)}."
            )
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
        if self.fresh not in FRESH:
            raise ConfigurationError(
                f"unknown fresh mode {self.fresh!r}. Fix: --pgstandby-fresh takes one of "
                f"{', '.join(FRESH)} (auto: function-scoped clusters are restored from a "
                "per-session snapshot where the backend can, else rebuilt)."
            )
        if self.standbys < 1:
            raise ConfigurationError(
                f"standbys={self.standbys}: a cluster needs at least one standby. "
                "Fix: --pgstandby-standbys 1 or more."
            )
        if not (self.timeout > 0 and math.isfinite(self.timeout)):
            raise ConfigurationError(
                f"timeout={self.timeout}: must be a positive number of seconds. "
                "Fix: --pgstandby-timeout 60."
            )
        if self.timeout < MIN_TIMEOUT:
            raise ConfigurationError(
                f"timeout={self.timeout:g}: too short to bound any step of a build (a "
                f"server start alone takes longer); the least is {MIN_TIMEOUT:g} s. Fix: "
                "--pgstandby-timeout 60 (the default), or any value from 1 up."
            )
        if self.synchronous is not None and not _SYNC_METHOD.fullmatch(self.synchronous):
            raise ConfigurationError(
                f"synchronous={self.synchronous!r}: say how many standbys a commit waits for. "
                "Fix: 'FIRST 1' (priority order) or 'ANY 1' (quorum), as in "
                "synchronous_standby_names."
            )
        if self.version is not None and not (self.version.isdigit() and int(self.version) >= 10):
            raise ConfigurationError(
                f"version={self.version!r}: give a PostgreSQL major version number, such as "
                "13, 15 or 17. Fix: --pgstandby-version 17 (Docker runs the image setting's "
                "repository at that tag, pgstandby/postgres:17; local picks binaries of it)."
            )
        self._check_external()

    @property
    def docker_image(self) -> str:
        """The image the Docker backend runs: ``image``, its tag replaced by ``version``
        when one is asked (``pgstandby/postgres:15`` with version 13 runs
        ``pgstandby/postgres:13``)."""
        if not self.version:
            return self.image
        return f"{split_tag(self.image)[0]}:{self.version}"

    def _check_external(self) -> None:
        given = self.primary_dsn is not None
        if self.backend == "external" and not given:
            raise ConfigurationError(
                "backend=external needs the servers. Fix: --pgstandby-primary-dsn DSN and "
                "--pgstandby-standby-dsn DSN (one per standby)."
            )
        if given and self.backend in ("local", "docker"):
            raise ConfigurationError(
                f"--pgstandby-primary-dsn names a running server, but backend={self.backend} "
                "asks the harness to start its own. Fix: drop one of the two (with a DSN the "
                "backend is external)."
            )
        if not given and (self.standby_dsn or self.primary_data_dir or self.primary_container):
            raise ConfigurationError(
                "standby DSNs or primary files were given without --pgstandby-primary-dsn. "
                "Fix: give the primary's DSN too."
            )
        if given and not self.standby_dsn:
            raise ConfigurationError(
                "--pgstandby-primary-dsn was given without a standby. Fix: "
                "--pgstandby-standby-dsn DSN (repeat it, or a comma list, for more)."
            )
        for name in ("standby_data_dir", "standby_container"):
            values = getattr(self, name)
            if values and len(values) != len(self.standby_dsn):
                raise ConfigurationError(
                    f"{len(values)} {name.replace('_', '-')} value(s) for "
                    f"{len(self.standby_dsn)} standby DSN(s): they pair up in order. Fix: "
                    f"give one --pgstandby-{name.replace('_', '-')} per --pgstandby-standby-dsn."
                )

    @property
    def external(self) -> bool:
        """Whether the servers already run (given by DSN) rather than being built here."""
        return self.primary_dsn is not None

    @property
    def hardened(self) -> bool:
        return self.profile == "hardened"

    @property
    def uses_slots(self) -> bool:
        """A slot per standby: asked for, or part of the hardened profile."""
        return self.slots or self.hardened

    @property
    def standby_count(self) -> int:
        """How many standbys a cluster has: one per standby DSN for running servers."""
        return len(self.standby_dsn) if self.external else self.standbys

    def keeps(self, failed: bool) -> bool:
        """The one keep policy, asked by ``start_cluster``, ``build_cluster``, the pytest
        fixtures and the factories: ``always``, or ``on-failure`` when something failed."""
        return self.keep == "always" or (self.keep == "on-failure" and failed)

    def with_overrides(self, **overrides: Any) -> Settings:
        known = {f.name for f in fields(self)}
        unknown = set(overrides) - known
        if unknown:
            raise ConfigurationError(
                f"unknown pgstandby setting(s) {', '.join(sorted(unknown))}. "
                f"Known: {', '.join(sorted(known))}."
            )
        return replace(self, **_coerce(overrides))


def split_tag(image: str) -> tuple[str, str | None]:
    """An image name's repository and tag (``localhost:5000/pg`` has no tag: a registry's
    port is not one)."""
    repo, sep, tag = image.rpartition(":")
    if not sep or "/" in tag:
        return image, None
    return repo, tag


def split_list(value: Any) -> tuple[str, ...]:
    """One value per standby from a list (a repeated option) or a comma list; DSNs are
    split only where a new DSN starts, so a multi-host DSN stays whole."""
    items = [value] if isinstance(value, str) else list(value)
    out: list[str] = []
    for item in items:
        out += [part.strip() for part in _DSN_SEPARATOR.split(str(item)) if part.strip()]
    return tuple(out)


def _split_plain(value: Any) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else list(value)
    return tuple(p.strip() for item in items for p in str(item).split(",") if p.strip())


def _coerce(raw: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if value is None or value == "" or value == [] or value == ():
            continue
        if key == "standby_dsn":
            out[key] = split_list(value)
            continue
        if key in LIST_SETTINGS:
            out[key] = _split_plain(value)
            continue
        if key in ("cascade", "slots", "archiving"):
            out[key] = _boolean(key, value)
            continue
        if key == "version":
            out[key] = str(value).strip()
            continue
        try:
            if key == "standbys":
                value = int(value)
            elif key == "timeout":
                value = float(value)
        except (ValueError, TypeError):
            raise ConfigurationError(
                f"{key}={value!r} is not a number. Fix: --pgstandby-{key} with a number."
            ) from None
        out[key] = value
    return out


def _boolean(key: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE + _FALSE:
        return text in _TRUE
    raise ConfigurationError(
        f"{key}={value!r} is not a yes/no value. Fix: --pgstandby-{key} true or false."
    )


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
            if value not in (None, "", [], ()):
                merged[f.name] = value
                break
    return Settings(**_coerce(merged))
