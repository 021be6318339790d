"""A Docker node: one PostgreSQL container of a DockerBackend cluster, and the names and
files every such container shares (the seed's aliases, the pinned PGDATA, the supervisor
that keeps a standby's container up while its server is stopped)."""

from __future__ import annotations

import io
import logging
import shlex
import signal
import socket
import tarfile
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import docker.errors
from psycopg import pq
from psycopg.conninfo import make_conninfo
from testcontainers.core.container import DockerContainer

from .._wait import poll_until
from ..errors import SetupFailedError, UnsupportedError, WaitTimeoutError
from .base import (
    CONTAINER_PGDATA,
    STOP_SIGNALS,
    Credentials,
    NodeHandle,
    OwnedHandle,
    PeerAddress,
    Reach,
    Role,
    StopMode,
)
from .containers import (
    ContainerFiles,
    ContainerRelay,
    ahead_of_entrypoint,
    container_address,
    published_port,
)
from .engines import EngineAddress
from .readiness import wait_container_ready

log = logging.getLogger(__name__)

PGDATA = CONTAINER_PGDATA  # pinned: postgres:18 moved its default
SHARED_DIR = "/pgstandby"  # the cluster's volume, in every container: backups, WAL archive
SOCKET_DIR = "/var/run/postgresql"  # the images' (Debian's and the official) socket
PRIMARY_ALIAS = "postgres-primary-lab"
STANDBY_ALIAS = "postgres-standby-lab"
RELAY_IN_CONTAINER = "/pgstandby-relay.pl"
SUPERVISOR = Path(__file__).with_name("supervisor.sh")
KEEP_FLAG = "/tmp/pgstandby-keep"  # supervisor.sh: from now on, keep the container up
# what supervisor.sh says when a kept container's server exits
SUPERVISOR_EXITED = "pgstandby-supervisor: the server exited"
SUPERVISOR_IN_CONTAINER = "/pgstandby-supervisor.sh"
RESTORE = Path(__file__).with_name("restore.sh")  # a snapshot's copy's first start
RESTORE_IN_CONTAINER = "/pgstandby-restore.sh"
RESTORE_ARCHIVE = "/pgstandby-restore.tgz"  # what restore.sh unpacks (its ARCHIVE)
PRIMARY_INIT = Path(__file__).with_name("primary-init.sh")
PRIMARY_INIT_IN_CONTAINER = "/pgstandby-primary-init.sh"
TEMPLATE_LABEL = "org.pgstandby.template"  # lab/image/Dockerfile: an initdb made at build
RELAY_PORT = "15432"  # on the container's own 127.0.0.1
_SETUP_END = {
    "primary": "PostgreSQL init process complete; ready for start up.",
    "standby": "Starting standby server...",
}


def copied(source: Path, destination: str) -> tuple[bytes, str, int]:
    """A file of ours for ``with_copy_into_container``: copied into the container before it
    starts, with its mode, rather than bind-mounted from a path of this machine, which a
    remote daemon (or the daemon of a job that runs in a container) does not have."""
    return source.read_bytes(), destination, source.stat().st_mode & 0o777


def restoring(container: Any, archive: bytes | None) -> Any:
    """A container that starts as a snapshot's copy (restore.sh): the archive of the
    original's data directory and the script that unpacks it at the first start, ahead
    of the entrypoint the container was given (its last setting)."""
    if archive is None:
        return container
    container = container.with_copy_into_container(archive, RESTORE_ARCHIVE, 0o600)
    container = container.with_copy_into_container(*copied(RESTORE, RESTORE_IN_CONTAINER))
    return ahead_of_entrypoint(container, "bash", RESTORE_IN_CONTAINER)


class OneArchiveContainer(DockerContainer):
    """testcontainers' container, whose files (``with_copy_into_container``) go in with
    one put_archive call rather than one per file: each call costs the daemon ~60 ms
    (it mounts the container's files), and a node has three to five files."""

    def _transfer_into_container(self, transferable: Any, destination: str, mode: int) -> None:
        if getattr(self, "_archived_into", None) is self._container:
            return  # start() asks once per file: the first ask sent them all
        self._archived_into = self._container
        specs = list(self._transferable_specs)
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as tar:
            for content, path, *rest in specs:
                data = content if isinstance(content, bytes) else Path(content).read_bytes()
                info = tarfile.TarInfo(name=path)
                info.size, info.mode = len(data), rest[0] if rest else 0o644
                tar.addfile(info, io.BytesIO(data))
        if not self.get_wrapped_container().put_archive(path="/", data=buffer.getvalue()):
            raise OSError(f"could not copy {', '.join(s[1] for s in specs)} into the container")


class ContainerBackend(Protocol):
    """What a node asks of the DockerBackend that made it (docker.py imports this module,
    so the class itself is not named here)."""

    image: str
    timeout: float
    engine: EngineAddress
    joined: Any  # the container this process runs in, joined to the network; or None
    network_name: str
    _pool: ThreadPoolExecutor

    def container_name(self, node: str) -> str: ...
    def node_by_container(self, name: str) -> DockerNode | None: ...


@dataclass(repr=False)  # OwnedHandle's: no password of its environment
class DockerNode(OwnedHandle):
    """One PostgreSQL container."""

    backend: ContainerBackend  # the DockerBackend that made it
    name: str
    role: Role
    alias: str  # its name inside the cluster's network
    tc: Any  # testcontainers DockerContainer (use .container: it waits for a start under way)
    credentials: Credentials
    data_dir: str = PGDATA
    upstream: DockerNode | None = None  # a standby's upstream: if it dies, stop waiting
    relay: ContainerRelay | None = None
    _port: int | None = field(default=None, repr=False)
    _stopped_by_signal: bool = field(default=False, repr=False)  # pause() without a freezer
    _kept: bool = field(default=False, repr=False)
    _starting: Future[None] | None = field(default=None, repr=False)
    _keeping: Future[Any] | None = field(default=None, repr=False)
    _shared_owned: bool = field(default=False, repr=False)
    _address: str | None = field(default=None, repr=False)
    _started_at: int = field(default=0, repr=False)  # output length when start() was asked
    from_backup: bool = False  # made by create_node: no setup output, all of it is log
    slot: str | None = None  # the upstream's slot it streams through (command line)
    # a snapshot's copy: the setup output of the run that built the original
    restored_setup: str | None = field(default=None, repr=False)
    held: str | None = field(default=None, repr=False)  # a warm kit's: its fingerprint

    @property
    def container(self) -> Any:
        """The testcontainers container, once its start (maybe in another thread) is done;
        a failed start raises here."""
        if self._starting is not None:
            starting, self._starting = self._starting, None
            starting.result()
        return self.tc

    def __post_init__(self) -> None:
        self.files = ContainerFiles(
            self.backend.container_name(self.name),
            lambda argv: tuple(self.container.exec(argv)),
            lambda: self.data_dir,
        )

    @property
    def wrapped(self) -> Any:
        return self.container.get_wrapped_container()

    @property
    def port(self) -> int:
        """The port published on the engine's address (docker may pick a new one at each
        start), or 5432 where this process joined the cluster's network."""
        if self.backend.joined is not None:
            return 5432
        if self._port is None:
            self.container.reload()
            self._port = published_port(self.wrapped, self.name, self.backend.engine.publish_ip)
        return self._port

    @property
    def host(self) -> str:
        """Where this process reaches the server: 127.0.0.1 for a local daemon, the
        daemon's host for a remote one, the container's own address in the cluster's
        network where this process runs in a container that joined it."""
        if self.backend.joined is None:
            return self.backend.engine.host
        if self._address is None:
            self.container.reload()
            networks = self.wrapped.attrs["NetworkSettings"]["Networks"]
            self._address = str(networks[self.backend.network_name]["IPAddress"])
        return self._address

    @property
    def dsn(self) -> str:
        c = self.credentials
        return make_conninfo(
            host=self.host, port=self.port, user=c.user, password=c.password, dbname=c.dbname
        )

    def container_name(self) -> str | None:
        return self.backend.container_name(self.name)

    def file_location(self, relpath: str = "") -> str:
        return self.files.location(relpath)

    def peer_address(self, peer: NodeHandle) -> PeerAddress:
        theirs = peer.container_name()
        peer_node = self.backend.node_by_container(theirs) if theirs else None
        peer_container = peer_node.wrapped if peer_node else None
        return container_address(self.wrapped, peer_container, str(self.port))

    def status(self) -> str:
        self.container.reload()
        return str(self.container.status)

    def is_running(self) -> bool:
        """The container runs, and so does the postmaster (the container outlives its
        server: see supervisor.sh). A postmaster that answers libpq's ping (no login: a
        millisecond) runs; only one that does not is asked through ``docker exec`` (~60 ms,
        which pgstandby_db paid three times a test)."""
        if self.status() != "running":
            return False
        if pq.PGconn.ping(make_conninfo(self.dsn, connect_timeout=2).encode()) == pq.Ping.OK:
            return True
        return self._postmaster("kill -0") == 0

    def _postmaster(self, command: str) -> int:
        """Run ``command "$pid"`` on the postmaster inside the container (bash's kill
        builtin: images need not have procps); its exit code, 1 without a postmaster."""
        script = f'pid=$(head -n 1 "$PGDATA/postmaster.pid" 2>/dev/null) && {command} "$pid"'
        code, _ = self.container.exec(["bash", "-c", script])
        return int(code)

    def wait_ready(self) -> None:
        backend = self.backend
        wait_container_ready(self, self.upstream, timeout=backend.timeout, image=backend.image)
        if not self._kept:
            # ready once: keep its data from now on. A docker exec costs ~70 ms, so it runs
            # beside the caller; whatever stops the server waits for it first (_kept_flag).
            self._keeping = self.backend._pool.submit(self.tc.exec, ["touch", KEEP_FLAG])
            self._kept = True

    def _kept_flag(self) -> None:
        if self._keeping is not None:
            keeping, self._keeping = self._keeping, None
            code, out = keeping.result()
            if code != 0:
                raise SetupFailedError(f"could not mark {self.name} to be kept: {out!r}")

    def server_gone(self) -> str | None:
        """Why the server of a kept container is not coming: supervisor.sh's last word
        is that it exited (a start on data it cannot recover, say). None otherwise."""
        if not self._kept:
            return None  # before that, a server that exits ends the container
        text = self.all_output()[self._started_at :]  # since this start was asked for
        said = text.find(SUPERVISOR_EXITED)
        if said < 0:
            return None
        return text[said:].splitlines()[0].removeprefix("pgstandby-supervisor: ")

    def unreachable(self) -> str | None:
        """Why this process cannot reach a server that is up in its container (asked by
        a wait that is taking long), or None: ``pg_isready`` inside says it accepts, and a
        TCP connection from here to the address the harness dials fails."""
        code, _ = self.wrapped.exec_run(["pg_isready", "-q", "-h", SOCKET_DIR, "-p", "5432"])
        if code != 0:
            return None
        try:
            socket.create_connection((self.host, self.port), timeout=2).close()
        except OSError as exc:
            return (
                f"{self.name}'s server accepts connections in its container, but this "
                f"process cannot reach it at {self.host}:{self.port} ({exc.strerror or exc}); "
                f"{self.backend.engine.describe()}. Fix: TC_HOST (or "
                "TESTCONTAINERS_HOST_OVERRIDE) = the address where that daemon's published "
                "ports are reached from here, or run pytest where that address is reachable"
            )
        return None

    def all_output(self) -> str:
        return bytes(self.wrapped.logs(stdout=True, stderr=True)).decode(errors="replace")

    def _split(self) -> tuple[str, str]:
        text = self.all_output()
        if self.restored_setup is not None:
            return self.restored_setup, text
        if self.from_backup:
            return "", text
        marker = _SETUP_END[self.role]
        cut = text.rfind(marker)
        if cut < 0:
            return text, ""
        cut += len(marker)
        return text[:cut], text[cut:].lstrip("\n")

    def setup_output(self) -> str:
        return self._split()[0]

    def log(self) -> str:
        return self._split()[1]

    def read_file(self, relpath: str) -> str:
        return self.files.read(relpath)

    def exists(self, relpath: str) -> bool:
        return self.files.exists(relpath)

    def reach(self, host: str, port: int) -> Reach:
        return self.files.reach(host, port)

    def _exec(
        self, argv: list[str], env: dict[str, str], timeout: float, user: str = "postgres"
    ) -> str:
        code, out = self.wrapped.exec_run(
            ["timeout", f"{timeout:g}", *argv], user=user, workdir="/", environment=env
        )
        text = bytes(out).decode(errors="replace")
        where = f"in container {self.container_name()}"
        if code == 124:
            raise WaitTimeoutError(
                f"timed out after {timeout:g}s waiting for `{shlex.join(argv)}` {where} to "
                "finish; it was killed. Fix: a larger --pgstandby-timeout, or see why it "
                "hangs; its output so far:\n" + text[-3000:]
            )
        if code != 0:
            raise SetupFailedError(
                f"`{shlex.join(argv)}` {where} exited with status {code}.\n" + text[-3000:]
            )
        return text

    def run(
        self, argv: list[str], env: dict[str, str] | None = None, timeout: float | None = None
    ) -> str:
        values = {"PGHOST": SOCKET_DIR, "PGPORT": "5432", "PGUSER": self.credentials.user}
        script = 'cd "$PGDATA" 2>/dev/null || cd /; exec "$@"'
        return self._exec(
            ["bash", "-c", script, "run", *argv],
            {**values, "PGDATA": self.data_dir, **(env or {})},
            timeout or self.backend.timeout,
        )

    def write_file(self, relpath: str, text: str, append: bool = False) -> None:
        script = f'umask 077 && printf %s "$PGSTANDBY_TEXT" {">>" if append else ">"} "$1"'
        path = self.files.path(relpath)
        self._exec(["sh", "-c", script, "write", path], {"PGSTANDBY_TEXT": text}, 30)

    @property
    def shared_dir(self) -> str:
        if not self._shared_owned:  # a new volume is root's: give it to the servers' account
            self._exec(["chown", "postgres:", SHARED_DIR], {}, 30, user="root")
            self._shared_owned = True
        return SHARED_DIR

    def _wait_exited(self, timeout: float, what: str) -> None:
        poll_until(
            lambda: self.status() in ("exited", "dead"),
            what=f"{self.name} to stop after {what}",
            timeout=timeout,
            log=self.log,
        )

    def stop(self, mode: StopMode = "fast", timeout: float = 60.0) -> None:
        """Stop the server. The container stays up with its data (a tmpfs), so that
        start() runs the server again on the same data and settings."""
        if not self.is_running():
            return
        self._kept_flag()
        self._postmaster(f"kill -{STOP_SIGNALS[mode].name.removeprefix('SIG')}")
        self._wait_down(timeout, f"a {mode} shutdown")

    def _wait_down(self, timeout: float, what: str) -> None:
        poll_until(
            lambda: not self.is_running(),
            what=f"{self.name}'s server to stop after {what}",
            timeout=timeout,
            log=self.log,
        )

    def start(self) -> None:
        """Start the server again on its data: the container's supervisor gets SIGUSR1
        (a stopped container, which has lost its data, is started anew)."""
        if self.is_running():
            return
        self._started_at = len(self.all_output())  # what server_gone() reads from
        if self.status() == "running":
            self.container.exec(["bash", "-c", "kill -USR1 1"])
        else:
            self._port = self._address = None
            self.wrapped.start()  # testcontainers' start() would create a new container
        self.wait_ready()

    def reclone(self) -> None:
        """A container restart: setup-standby.sh runs again, empties the data directory
        and takes a new base backup (the seed's own restart)."""
        if self.role != "standby":
            raise UnsupportedError(f"reclone() rebuilds a standby; {self.name} is the primary")
        self._kept_flag()
        if self.status() == "running":
            self.wrapped.kill(signal=signal.SIGINT)
            self._wait_exited(self.backend.timeout, "a container stop")
        self._port = self._address = None
        self._kept = False
        self.wrapped.start()
        self.wait_ready()

    def kill(self) -> None:
        """SIGKILL of the postmaster, as a crash; the container and its data stay."""
        if not self.is_running():
            return
        self._kept_flag()
        self._postmaster("kill -KILL")
        self._wait_down(30, "SIGKILL")

    def pause(self) -> None:
        """``docker pause``: the cgroup freezer stops every process of the container.
        Where the engine cannot freeze (rootless Podman on cgroup v1: "can not pause
        containers on rootless containers"), SIGSTOP to the postmaster and its children,
        as the local backend does; resume() then sends SIGCONT the same way. A ``docker
        exec`` still under way (the keep flag wait_ready sets) ends first: one that the
        freezer catches starting wedges the container in the daemon, unpause included."""
        self._kept_flag()
        try:
            self.wrapped.pause()
        except docker.errors.APIError as exc:
            if "can not pause" not in str(exc):
                raise
            self._signal_server("STOP")
            self._stopped_by_signal = True

    def resume(self) -> None:
        if self._stopped_by_signal:
            self._signal_server("CONT")
            self._stopped_by_signal = False
            return
        self.wrapped.unpause()

    def _signal_server(self, sig: str) -> None:
        """``sig`` to the postmaster (its pid from postmaster.pid), then to each of its
        children (the postmaster forks every process of the server)."""
        script = (
            f'pm=$(head -n 1 "$1/postmaster.pid") && kill -{sig} "$pm" && '
            "for s in /proc/[0-9]*/stat; do "
            'read -r pid _ _ ppid _ < "$s" 2>/dev/null || continue; '
            f'[ "$ppid" = "$pm" ] && kill -{sig} "$pid"; '
            "done; true"
        )
        code, out = self.wrapped.exec_run(["sh", "-c", script, "sh", self.data_dir], user="root")
        if code != 0:
            raise SetupFailedError(
                f"{self.name}: could not send SIG{sig} to its server in container "
                f"{self.container_name()} ({out.decode(errors='replace').strip()}). Fix: "
                "start() it first if it is stopped."
            )

    def open_relay(self, host: str, port: str) -> tuple[str, str]:
        """The relay runs inside this container (mounted at creation), started by a
        detached ``docker exec`` so that it is no child of the postmaster."""
        if self.relay is None:
            self.relay = ContainerRelay(self.wrapped, self.container_name() or self.name)
            self.relay.open(["perl", RELAY_IN_CONTAINER, RELAY_PORT, host, port])
        return "127.0.0.1", RELAY_PORT

    def cut_relay(self) -> None:
        assert self.relay is not None, "open_relay() first"
        self.relay.signal("STOP")

    def mend_relay(self) -> None:
        if self.relay is not None:
            self.relay.signal("CONT")

    def remove(self) -> None:
        """Remove the container and its anonymous volumes (testcontainers' stop)."""
        self.container.stop(force=True, delete_volume=True)
