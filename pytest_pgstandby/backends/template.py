"""An initdb template: one freshly initialised data directory per binaries, version,
initdb options and server account, made once (under a lock, so that pytest-xdist
workers share it) and copied for every primary. On a memory filesystem a copy takes
~0.05 s where initdb takes 0.4 s (1.2 s on disk)."""

from __future__ import annotations

import base64
import fcntl
import hashlib
import hmac
import logging
import os
import shutil
import stat
import tempfile
import time
from pathlib import Path

import psycopg
from psycopg import sql

from ..binaries import Binaries
from ..errors import UnsafeDataDirError
from . import reaper
from .accounts import Account, run_as
from .sessions import STAGING, TEMPLATE_PREFIX

log = logging.getLogger(__name__)

INITDB_OPTIONS = (
    "--username=postgres",
    # TCP only with a password: another account on this machine must not get in; the
    # socket (trust) lives in a 0700 directory of the servers' account
    "--auth-local=trust",
    "--auth-host=scram-sha-256",
    "--encoding=UTF8",
    "--locale=C",
    "--no-sync",
)
PREFIX = TEMPLATE_PREFIX
#: Lines added to the template's postgresql.conf: what every local server needs, kept in
#: the file rather than on the command line, where a reload would log "parameter cannot
#: be changed without restarting" and "contains errors" against initdb's own value.
CONF_LINES = (
    "# added by pytest-pgstandby: dynamic shared memory in the data directory, so that a",
    "# killed server's segments go with it, not into /dev/shm for good",
    "dynamic_shared_memory_type = mmap",
)

#: initdb's WAL segment holds ~5 MB of records and 11 MB of zeros: the zeros become holes
#: (the same bytes to every reader), which each ``cp -a`` of the template keeps as holes
#: rather than copying them (a primary's copy: 0.049 s -> see CHANGELOG)
SPARSE_WAL = 'for f in "$1"/0*; do cp --sparse=always "$f" "$f.s" && mv "$f.s" "$f"; done'


def template(
    bins: Binaries, account: Account, base: Path, env: dict[str, str], timeout: float
) -> Path:
    """The template directory in ``base`` (the harness's private directory), made now if
    it is not there yet."""
    made = template_dir(bins, account, base)
    if _is_made(made, account):
        return made
    lock_path = base / f".{made.name}.lock"
    try:
        lock = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    except OSError as exc:
        raise UnsafeDataDirError(
            f"the initdb template's lock {lock_path} cannot be opened without following a "
            f"link or replacing what is there ({exc.strerror}). Fix: remove it; the harness "
            "makes it again."
        ) from None
    with os.fdopen(lock, "r+") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # one initdb; the others wait and find it made
        if _is_made(made, account):
            return made
        uids = {os.geteuid(), account.uid}
        for stale in base.glob(f".{made.name}{STAGING}*"):  # a killed build's: we hold the lock
            if stale.lstat().st_uid in uids:
                shutil.rmtree(stale, ignore_errors=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{made.name}{STAGING}", dir=base))
        # killed meanwhile (even with SIGKILL), its reaper removes the staging directory
        # and the shared memory initdb's killed backends leave
        reaper.watch_template(staging, uids, account.uid, time.time() - 1)
        try:
            account.chown(staging)
            data = staging / "data"
            out = run_as(
                [bins.path("initdb"), "-D", str(data), *INITDB_OPTIONS], account, env, timeout
            )
            (staging / "initdb.out").write_text(out)
            with open(data / "postgresql.conf", "a", encoding="utf-8") as conf:
                conf.write("\n" + "\n".join(CONF_LINES) + "\n")
            run_as(["sh", "-c", SPARSE_WAL, "sh", str(data / "pg_wal")], account, env, timeout)
            os.chmod(staging, 0o755)
            staging.rename(made)  # atomic: complete or absent
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        finally:
            reaper.release_local(staging)
    log.info("made the initdb template %s", made)
    return made


def template_dir(bins: Binaries, account: Account, base: Path) -> Path:
    """Where the template of these binaries, options and servers' account lives."""
    options = " ".join((*INITDB_OPTIONS, *CONF_LINES, SPARSE_WAL))
    stamp = f"{bins.bindir}|{bins.version}|{options}|{account.uid}"
    key = hashlib.sha256(stamp.encode()).hexdigest()[:12]
    return base / f"{PREFIX}{bins.version}-{key}"


def _is_made(made: Path, account: Account) -> bool:
    """Whether ``made`` is a complete template of ``account``'s: ``base`` is the harness's
    private directory, and still neither the template nor its data may be a symlink or
    another account's."""
    try:
        entries = [made.lstat(), (made / "data").lstat(), (made / "data" / "PG_VERSION").lstat()]
    except OSError:
        return False
    kinds = [stat.S_ISDIR, stat.S_ISDIR, stat.S_ISREG]
    return all(
        k(e.st_mode) and e.st_uid == account.uid for k, e in zip(kinds, entries, strict=True)
    )


def copy_template(
    made: Path, data_dir: str, account: Account, env: dict[str, str], timeout: float
) -> str:
    """A new data directory from the template, owned by ``account``. Returns a line for
    the node's setup output."""
    run_as(["cp", "-a", str(made / "data"), data_dir], account, env, timeout)
    return (
        f"initdb {' '.join(INITDB_OPTIONS)}: copied from the template {made} "
        "(made once per binaries, version and options)\n"
    )


#: PBKDF2 rounds of the superuser's SCRAM verifier. PostgreSQL's 4096 cost ~7 ms on both
#: sides of every connection here; they guard a stored hash against guessing, and the
#: password is 128 random bits that live as long as the cluster: no guess is possible.
SCRAM_ITERATIONS = 16


def scram_verifier(password: str, iterations: int = SCRAM_ITERATIONS) -> str:
    """A SCRAM-SHA-256 verifier as pg_authid stores it (RFC 5802 / 7677; the password is
    ASCII, so SASLprep leaves it as it is). The client follows the count it carries."""
    salt = os.urandom(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    stored_key = hashlib.sha256(hmac.new(salted, b"Client Key", "sha256").digest()).digest()
    server_key = hmac.new(salted, b"Server Key", "sha256").digest()
    b64 = [base64.b64encode(v).decode() for v in (salt, stored_key, server_key)]
    return f"SCRAM-SHA-256${iterations}:{b64[0]}${b64[1]}:{b64[2]}"


def set_password(conninfo: str, user: str, password: str) -> None:
    """Give ``user`` its password over ``conninfo`` (the socket: TCP needs the password),
    as a verifier: never the password on a command line that ``ps`` shows, nor in a
    statement a server log could keep."""
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(
            sql.SQL("ALTER ROLE {} PASSWORD {}").format(
                sql.Identifier(user), sql.Literal(scram_verifier(password))
            )
        )
