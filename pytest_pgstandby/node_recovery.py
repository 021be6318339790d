"""Recovery depth: replay control, WAL switches, one server process killed, backups, the
WAL archive and ``pg_rewind``, in the vocabulary of PostgreSQL's Cluster.pm (``backup``,
``enable_archiving``, ``advance_wal``) and written once on the handle's primitives (run a
program as the server's account, write a file of its data directory, the cluster's
shared directory), so that every backend has them and a server the harness did not
start refuses them through the one guard.

>>> old = cluster.primary                                            # doctest: +SKIP
>>> cluster.standby.promote(); old.execute("INSERT INTO t VALUES (2)")  # a divergence
>>> old.rewind(cluster.standby)    # now a standby of the new primary   # doctest: +SKIP
"""

from __future__ import annotations

import re
import signal
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from psycopg.conninfo import make_conninfo

from ._wait import NotYet, poll_until
from .backends.base import conninfo_params
from .errors import ConfigurationError, SetupFailedError, WrongRoleError
from .node_core import NodeCore, journaled

_NAME = re.compile(r"[a-z][a-z0-9_]{0,62}")
STREAMING = "SELECT status FROM pg_stat_wal_receiver"


@dataclass(frozen=True)
class Backup:
    """A base backup the harness keeps in the cluster's shared directory (removed with
    the cluster): ``Cluster.add_node(name, backup)`` starts a node from it."""

    name: str
    path: str  # as every server of the cluster sees it
    source: str  # the node it was taken of
    output: str  # what pg_basebackup printed


def conf_line(name: str, value: str) -> str:
    """A postgresql.conf line (the value quoted as PostgreSQL reads it back)."""
    return f"{name} = '{value.replace(chr(39), chr(39) * 2)}'\n"


class RecoveryVerbs(NodeCore):
    """Replay control, WAL, processes, backups, archiving and rewind of a node."""

    # roles ---------------------------------------------------------------------------------
    def _must_be(self, standby: bool, verb: str, fix: str) -> None:
        """Refuse ``verb`` at once on a server of the other role, naming what it is."""
        if self.is_in_recovery() != standby:
            now = "a primary (not in recovery)" if standby else "a standby (in recovery)"
            raise WrongRoleError(f"{verb} of {self.name}: it is {now}. Fix: {fix}.")

    # replay control --------------------------------------------------------------------------
    @journaled
    def pause_replay(self) -> None:
        """Stop applying WAL while still receiving it (``pg_wal_replay_pause()``): a
        replica that is behind on purpose, for as long as a test needs. Returns once replay
        has really paused."""
        self.handle.refuse_unless_owned("pause replay on")
        self._must_be(True, "pause_replay()", "call it on a standby")
        self.execute("SELECT pg_wal_replay_pause()")
        self.poll_query_until(self._paused_sql(), True)

    @journaled
    def resume_replay(self) -> None:
        """Apply WAL again (``pg_wal_replay_resume()``)."""
        self.handle.refuse_unless_owned("resume replay on")
        self._must_be(True, "resume_replay()", "call it on a standby")
        self.execute("SELECT pg_wal_replay_resume()")
        self.poll_query_until(self._paused_sql(), False)

    def reach_recovery_target(self, conf: Mapping[str, Any]) -> None:
        """After a start for targeted recovery (``recovery_target*`` in ``conf``, action
        pause or promote): until the target is reached, paused there or promoted. A target
        the WAL never reaches ends the server (``recovery ended before configured recovery
        target was reached``), said at once: it may accept connections for a while first."""
        keys = {k for k in conf if k.startswith("recovery_target")}
        keys -= {"recovery_target_action", "recovery_target_inclusive", "recovery_target_timeline"}
        if not keys or conf.get("recovery_target_action", "pause") == "shutdown":
            return

        def reached() -> bool:
            # inside the poll: a server that refuses connections while it recovers (or
            # shuts down after running out of WAL) is "not yet", the version query too
            paused = self._paused_sql().removeprefix("SELECT ")
            return self.query_value(f"SELECT NOT pg_is_in_recovery() OR {paused}") is True

        poll_until(
            reached,
            what=f"{self.name} to reach its recovery target",
            timeout=self.timeout,
            log=self.log,
            abort=lambda: None if self.is_running() else "its server exited",
            abort_every=0.1,
        )

    def is_replay_paused(self) -> bool:
        """Whether replay is paused (requested and reached, on PostgreSQL 14 and later)."""
        return bool(self.query_value(self._paused_sql()))

    def _paused_sql(self) -> str:
        if self.server_version_num() >= 140000:  # 13 says true as soon as it is requested
            return "SELECT pg_get_wal_replay_pause_state() = 'paused'"
        return "SELECT pg_is_wal_replay_paused()"

    # WAL and processes -----------------------------------------------------------------------
    def advance_wal(self, segments: int = 1) -> str:
        """Switch to a new WAL segment ``segments`` times, writing a record before each so
        that every switch moves (Cluster.pm's ``advance_wal``); returns the insert LSN
        after the last. Old segments become removable at the next checkpoint."""
        self.handle.refuse_unless_owned("advance the WAL of")
        self._must_be(False, "advance_wal()", "call it on the primary: a standby writes no WAL")
        with self.connect() as conn:
            for _ in range(segments):
                conn.execute("SELECT pg_logical_emit_message(false, 'pgstandby', 'advance')")
                conn.execute("SELECT pg_switch_wal()")
            row = conn.execute("SELECT pg_current_wal_insert_lsn()::text").fetchone()
        return str(row[0]) if row else ""

    @journaled
    def kill_process(self, kind: str, sig: int = signal.SIGKILL) -> list[int]:
        """Send ``sig`` to this server's processes of ``backend_type`` ``kind``
        (``walreceiver``, ``walsender``, ``startup``, ``checkpointer``, ...), as the
        server's account on its own side, and wait until they are gone. Returns their pids.
        SIGKILL of any server process makes the postmaster restart the others (crash
        recovery), as it would in production."""
        self.handle.refuse_unless_owned(f"kill the {kind} of")
        rows = self.execute(
            "SELECT pid, backend_type FROM pg_stat_activity WHERE pid <> pg_backend_pid()"
        )
        pids = [int(pid) for pid, btype in rows if btype == kind]
        if not pids:
            running = ", ".join(sorted({str(b) for _, b in rows if b}))
            raise SetupFailedError(
                f"kill_process({kind!r}) of {self.name}: no such process runs now; it has "
                f"{running}. Fix: one of those; a walreceiver runs on a streaming standby, a "
                "walsender on its upstream."
            )
        name = signal.Signals(sig).name.removeprefix("SIG")
        # bash's kill builtin: images need not have procps
        self.handle.run(["bash", "-c", f'kill -{name} "$@"', "kill", *map(str, pids)])

        def gone() -> bool:
            left = self.execute("SELECT pid FROM pg_stat_activity WHERE pid = ANY(%s)", [pids])
            if left:
                raise NotYet(f"still running: {[r[0] for r in left]}")
            return True

        poll_until(gone, what=f"{kind} {pids} of {self.name} to go", timeout=self.timeout)
        return pids

    # backups and the archive -----------------------------------------------------------------
    def backup(self, name: str) -> Backup:
        """A base backup of this node (a primary or a standby) kept by the harness:
        ``pg_basebackup -X stream -c fast`` into the cluster's shared directory, run on the
        node's own side as its server account. ``Cluster.add_node`` starts nodes from it."""
        self.handle.refuse_unless_owned("take a backup of")
        if not _NAME.fullmatch(name):
            raise ConfigurationError(
                f"backup name {name!r}: not usable as a directory name here. Fix: lowercase "
                "letters, digits and underscores, starting with a letter."
            )
        path = f"{self.handle.shared_dir}/backups/{name}"
        self.handle.run(["mkdir", "-p", path.rsplit("/", 1)[0]])
        if self._exists(path):
            raise ConfigurationError(
                f"backup {name!r} exists already ({path}). Fix: another name per backup."
            )
        out = self.handle.run(
            ["pg_basebackup", "-D", path, "-X", "stream", "-c", "fast", "--no-sync", "-v"]
        )
        return Backup(name, path, self.name, out)

    def _exists(self, path: str) -> bool:
        try:
            self.handle.run(["test", "-e", path])
        except SetupFailedError:
            return False
        return True

    def archive_dir(self) -> str:
        """The cluster's WAL archive (in its shared directory), made at first use."""
        path = f"{self.handle.shared_dir}/archive"
        self.handle.run(["mkdir", "-p", path])
        return path

    @journaled
    def enable_archiving(self) -> None:
        """``archive_mode`` and an ``archive_command`` that copies each finished segment
        into the cluster's archive (never overwriting one), then a restart (archive_mode
        needs one), as Cluster.pm's ``enable_archiving``. ``factories.cluster(archiving=
        True)`` does this to the primary."""
        self.handle.refuse_unless_owned("enable archiving on")
        archive = self.archive_dir()
        command = f"test ! -f {archive}/%f && cp %p {archive}/%f"
        self.set_conf_lines(archive_mode="on", archive_command=command)
        self.restart()

    @journaled
    def set_conf_lines(self, /, **settings: str) -> None:
        """Append settings to ``postgresql.auto.conf`` (read last, so they win) while the
        server may be stopped; they take effect at its next start or reload."""
        self.handle.refuse_unless_owned("change the settings of")
        text = "".join(conf_line(k, str(v)) for k, v in settings.items())
        self.handle.write_file("postgresql.auto.conf", text, append=True)

    # pg_rewind -------------------------------------------------------------------------------
    @journaled
    def rewind(self, source: RecoveryVerbs, timeout: float | None = None) -> str:
        """Rejoin this node to ``source`` (the new primary after a failover) with
        ``pg_rewind``: stop this node if it runs, rewind its data directory to the point
        where the two timelines split, make it a standby of ``source`` (``standby.signal``
        and ``primary_conninfo`` re-pointed there, as ``follow()`` does), start it and
        return once it streams. Returns pg_rewind's output. This node keeps its own port
        and the settings its backend gives on the command line.

        pg_rewind needs this node's WAL from before the split: keep it if the node may
        checkpoint afterwards (``set_conf(wal_keep_size='128MB')`` before the failover,
        as PostgreSQL's RewindTest.pm does)."""
        self.handle.refuse_unless_owned("rewind")
        if source is self:
            raise ConfigurationError(f"rewind() of {self.name} needs another node as source")
        source._must_be_primary_for(f"rewind() of {self.name} onto {source.name}")
        stream = conninfo_params(str(source.query_value("SHOW primary_conninfo") or ""))
        if not stream:
            raise ConfigurationError(
                f"rewind() of {self.name}: {source.name} has no primary_conninfo to copy "
                "(it never was a standby of this cluster). Fix: rewind onto a promoted "
                "standby, or follow() the node afterwards."
            )
        addr = source.peer_address(self)
        superuser = conninfo_params(source.dsn)
        password = superuser.pop("password", "")
        superuser.update(host=addr.hosts[0], port=addr.port)
        if self.is_running():
            self.stop("fast")
        self.close_connections()
        out = self.handle.run(
            ["pg_rewind", "-D", self.data_dir, "--source-server", make_conninfo("", **superuser)],
            env={"PGPASSWORD": password} if password else None,
            timeout=timeout,
        )
        stream.update(host=addr.hosts[0], port=addr.port, application_name=self.name)
        self.handle.write_file("standby.signal", "")
        self.set_conf_lines(primary_conninfo=make_conninfo("", **stream))
        self.start()
        self.poll_query_until(STREAMING, "streaming", timeout)
        return out

    def _must_be_primary_for(self, what: str) -> None:
        if not self.is_running():
            raise WrongRoleError(f"{what}: {self.name} is not running. Fix: start() it first.")
        self._must_be(False, what, f"promote {self.name} first, or rewind onto the primary")
