"""Server processes on 127.0.0.1 from host or pip-installed binaries.

The primary is made by ``initdb`` followed by ``lab/setup-primary.sh``; each standby by
running ``lab/setup-standby.sh`` itself, whose final ``exec`` turns the script's process
into the standby's postmaster. As root, everything runs as an unprivileged account
(``postgres`` where it exists, else ``nobody``) in directories that account owns.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import shlex
import shutil
import tempfile
from pathlib import Path

from psycopg.conninfo import make_conninfo

from .. import binaries as binaries_mod
from ..binaries import Binaries
from ..errors import SetupFailedError, UnsafeDataDirError
from ..labfiles import lab_file
from . import reaper
from .accounts import binaries_for, reachable_by, run_account, run_as
from .base import NodeHandle, Role
from .local_node import LocalNode
from .owners import owner_stamp
from .ports import reserve_port
from .sessions import (
    OWNER_MARK,
    ROOT_PREFIX,
    default_base,
    filesystem_problem,
    harness_dir,
    refuse_in_use,
    remove_session,
    sweep_leftovers,
)
from .template import copy_template, scram_verifier, set_password, template
from .values import (
    HARDENED_PRIMARY_VALUES,
    REPLICATION_USER,
    hardened_standby_values,
    passfile_line,
)

log = logging.getLogger(__name__)


class LocalBackend:
    """Creates nodes as local processes under one harness-made temporary root."""

    name = "local"

    def __init__(
        self,
        pg_bin: str | None = None,
        timeout: float = 60.0,
        base: Path | None = None,
        hardened: bool = False,
        major: str | None = None,
    ) -> None:
        self.timeout = timeout
        self.hardened = hardened
        self.account = run_account()
        self.uids = {os.geteuid(), self.account.uid}  # the only accounts it ever signals
        found = binaries_mod.find(pg_bin, major=major)
        self.parent = base or default_base()
        # this account's own directory in the parent: every file of the harness lives there
        self.base = harness_dir(self.parent, self.account.uid, self.account.name)
        self.root = self._make_root()
        self.nodes: list[LocalNode] = []
        self.port_marks: list[Path] = []
        # per cluster, never the seed's well-known value: any account on this machine
        # reaches 127.0.0.1 (a snapshot's restore takes the snapshot's instead). Hex: a
        # value pg_basebackup -R writes unquoted, as the seed's own password
        self.superuser_password = secrets.token_hex(16)
        self.replication_password = secrets.token_hex(16)
        try:
            (self.root / OWNER_MARK).write_text(owner_stamp())
            # killed before close(), even by SIGKILL: the reaper removes it within seconds
            reaper.watch_local(self.root, self.uids)
            self.account.chown(self.root)
            self.socket_dir = self._own_dir("sock")  # 0700: the trust lines' only door
            self.passfile = self.socket_dir / "pgpass"  # read by the hardened standbys
            self.scripts = self._own_dir("lab")
            for script in ("setup-primary.sh", "setup-standby.sh"):
                shutil.copy2(lab_file(script), self.scripts / script)
                os.chmod(self.scripts / script, 0o755)
            self.bins = self._reachable(found)
        except BaseException as exc:
            shutil.rmtree(self.root, ignore_errors=True)
            with contextlib.suppress(OSError):
                self.base.rmdir()  # only when empty: a refused first run leaves nothing
            cause = filesystem_problem(str(exc)) if isinstance(exc, OSError) else None
            if cause is not None:
                raise SetupFailedError(f"cannot prepare {self.root}: {cause}.") from None
            raise

    def _make_root(self) -> Path:
        """This session's directory under ``base``, after sweeping dead sessions' ones."""
        try:
            sweep_leftovers(self.base, self.uids)
            return Path(tempfile.mkdtemp(prefix=ROOT_PREFIX, dir=self.base)).resolve()
        except PermissionError as exc:
            raise SetupFailedError(
                f"the harness directory cannot be made in {self.base}: it cannot be reached by "
                f"the account {self.account.name!r} ({exc.strerror}). Fix: set "
                "PGSTANDBY_TMPDIR to a directory this account can write and every account "
                "can traverse, such as /tmp."
            ) from None
        except OSError as exc:
            cause = filesystem_problem(str(exc))
            if cause is None:
                raise
            raise SetupFailedError(f"cannot make a session directory: {cause}.") from None

    def _reachable(self, found: Binaries) -> Binaries:
        if not reachable_by(self.account, [self.scripts / "setup-standby.sh"]):
            raise SetupFailedError(
                f"the harness directory {self.root} cannot be reached by the account "
                f"{self.account.name!r} that runs the servers (PostgreSQL refuses root): a "
                f"parent of it is not traversable. Fix: set PGSTANDBY_TMPDIR to a directory "
                "every account can traverse, such as /tmp."
            )
        return binaries_for(found, self.account)

    def _own_dir(self, name: str) -> Path:
        path = self.root / name
        path.mkdir(mode=0o700)
        self.account.chown(path)
        return path

    def shared_dir(self) -> Path:
        """The cluster's shared directory (backups, the WAL archive), made at first use."""
        path = self.root / "shared"
        if not path.is_dir():
            self._own_dir("shared")
        return path

    def reserve(self) -> int:
        """A port reserved for this session's lifetime (stop/start keep it)."""
        port, mark = reserve_port(self.base)
        self.port_marks.append(mark)
        reaper.watch_file(mark)
        return port

    def adopt(self, name: str, role: Role, port: int, slot: str | None = None) -> LocalNode:
        """A node for a data directory already in place under this session's root."""
        data_dir = str(self.check_data_dir(self.root / name))
        node = LocalNode(self, name, role, port, data_dir, slot=slot)
        self.nodes.append(node)
        return node

    @property
    def runs_from(self) -> str:
        return self.bins.source

    def describe(self) -> str:
        return (
            f"local: {self.bins.describe()}, servers run as {self.account.name!r}, data in "
            f"{self.base}"
        )

    def env(self, **extra: str) -> dict[str, str]:
        env = {
            "PATH": f"{self.bins.bindir}:/usr/local/bin:/usr/bin:/bin",
            "HOME": str(self.root),
            "LANG": "C.UTF-8",
            "LC_ALL": "C.UTF-8",
            "PGHOST": str(self.socket_dir),
        }
        env.update(extra)
        return env

    def dsn_for(self, node: LocalNode) -> str:
        c = node.credentials
        return make_conninfo(
            host="127.0.0.1", port=node.port, user=c.user, password=self.superuser_password,
            dbname=c.dbname,
        )  # fmt: skip

    def socket_dsn(self, node: LocalNode) -> str:
        """Over the node's socket (local trust: only the servers' account and root reach
        the 0700 directory): before the superuser has its password, and for readiness."""
        c = node.credentials  # quoted: PGSTANDBY_TMPDIR may hold a space
        return make_conninfo(
            host=str(self.socket_dir), port=node.port, user=c.user, dbname=c.dbname
        )

    def check_data_dir(self, data_dir: Path) -> Path:
        """Refuse any data directory the harness did not create under its own root:
        the standby script starts with ``rm -rf <data dir>/*``."""
        resolved = data_dir.resolve()
        if self.root not in resolved.parents:
            raise UnsafeDataDirError(
                f"refusing to run setup-standby.sh on data directory {data_dir}: it lies "
                f"outside this session's harness directory {self.root}, and the script's "
                "first step deletes the directory's contents. Fix: let the harness choose "
                "the data directory."
            )
        return resolved

    def create_primary(self, name: str) -> LocalNode:
        node = LocalNode(self, name, "primary", self.reserve(), str(self.root / name))
        self.nodes.append(node)
        made = template(self.bins, self.account, self.base, self.env(), self.timeout)
        line = copy_template(made, node.data_dir, self.account, self.env(), self.timeout)
        with open(node.setup_path, "a") as out:
            out.write(line)
        node.start()
        set_password(self.socket_dsn(node), node.credentials.user, self.superuser_password)
        run_as(
            ["/bin/bash", str(self.scripts / "setup-primary.sh")],
            self.account,
            self.env(
                PGPORT=str(node.port),
                PGDATA=node.data_dir,
                POSTGRES_USER="postgres",
                POSTGRES_DB="postgres",
                POSTGRES_REPLICATION_USER=REPLICATION_USER,
                # as a cheap SCRAM verifier (ALTER ROLE takes one): see SCRAM_ITERATIONS
                POSTGRES_REPLICATION_PASSWORD=scram_verifier(self.replication_password),
                **(HARDENED_PRIMARY_VALUES if self.hardened else {}),
            ),
            self.timeout,
            node.setup_path,
            self.root,
        )
        if self.hardened:
            self._write_passfile()
        return node

    def create_node(self, name: str) -> LocalNode:
        node = LocalNode(self, name, "standby", self.reserve(), str(self._own_dir(name)))
        self.nodes.append(node)
        return node

    def _write_passfile(self) -> None:
        fd = os.open(self.passfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(passfile_line(REPLICATION_USER, self.replication_password))
        self.account.chown(self.passfile)

    def create_standby(
        self,
        name: str,
        upstream: NodeHandle,
        slot: str | None = None,
        data_dir: Path | None = None,
    ) -> LocalNode:
        """Run setup-standby.sh against ``upstream`` (the primary, or a standby for a
        cascade: only the port value changes); its final ``exec`` is the postmaster, which
        streams through ``slot`` when one is given (made on the upstream beforehand)."""
        target = self.check_data_dir(data_dir or self.root / name)
        in_use = [(Path(n.data_dir), f"{n.name}'s data") for n in self.nodes]
        refuse_in_use(target, [*in_use, (self.socket_dir, "sockets"), (self.scripts, "scripts")])
        node = LocalNode(self, name, "standby", self.reserve(), str(target), slot=slot)
        if data_dir is None:
            self._own_dir(name)
        self.nodes.append(node)
        env = self.standby_env(node, upstream.port)
        node.start_via_script(self.scripts / "setup-standby.sh", env)
        return node

    def standby_env(self, node: LocalNode, upstream_port: int) -> dict[str, str]:
        """The values setup-standby.sh runs with for ``node``."""
        start_command = (
            shlex.join(node.server_command()) + " >>" + shlex.quote(str(node.log_path)) + " 2>&1"
        )
        values = dict(
            PGSTANDBY_PRIMARY_HOST="127.0.0.1",
            PGSTANDBY_PRIMARY_PORT=str(upstream_port),
            PGSTANDBY_DATA_DIR=node.data_dir,
            PGSTANDBY_POLL_INTERVAL="0.1",
            PGSTANDBY_START_COMMAND=start_command,
            POSTGRES_REPLICATION_USER=REPLICATION_USER,
            POSTGRES_REPLICATION_PASSWORD=self.replication_password,
        )
        if self.hardened:
            values.update(hardened_standby_values(str(self.passfile)))
        return self.env(**values)

    def close(self, keep: bool = False) -> None:
        if keep:
            log.warning("keeping %s and its servers for inspection", self.root)
        else:
            for node in reversed(self.nodes):
                node.stop_escalating()
                if node.relay is not None:
                    node.relay.kill()
                    node.relay.wait()
            remove_session(self.root, self.uids)
            for mark in self.port_marks:
                mark.unlink(missing_ok=True)
        reaper.release_local(self.root)
        for mark in self.port_marks:
            reaper.release_file(mark)
