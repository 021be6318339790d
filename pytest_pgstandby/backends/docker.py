"""Nodes as containers, on testcontainers: one user network per cluster with the seed's
aliases (``postgres-primary-lab``, ``postgres-standby-lab``); the primary from the image
with ``lab/setup-primary.sh`` in ``/docker-entrypoint-initdb.d/``, each standby running
``lab/setup-standby.sh`` as its entrypoint with the seed's default values (only the poll
interval is shortened). Ports are published on 127.0.0.1 only, and the harness connects
to 127.0.0.1 only.

Ryuk (testcontainers' reaper) needs an image that may not be pullable, so cleanup does not
depend on it: every container and network carries our labels, ``close()`` removes them,
and the next start sweeps labelled leftovers whose owning process is gone.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import signal
import socket
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
import docker.errors
from psycopg.conninfo import make_conninfo
from testcontainers.core.config import testcontainers_config
from testcontainers.core.container import DockerContainer
from testcontainers.core.network import Network

from .._wait import poll_until
from ..errors import ImageMissingError, SetupFailedError, UnsupportedError
from ..labfiles import lab_file
from .base import (
    RELAY,
    REPLICATION_PASSWORD,
    REPLICATION_USER,
    Credentials,
    NodeHandle,
    OwnedHandle,
    PeerAddress,
    Reach,
    Role,
    StopMode,
    wait_accepting,
)
from .containers import (
    LABEL,
    LABEL_CLUSTER,
    LABEL_OWNER_HOST,
    LABEL_OWNER_PID,
    ContainerFiles,
    ContainerRelay,
    availability,
    connect_docker,
    container_address,
    published_port,
    refuse_clash,
    remove_network,
    sweep_leftovers,
)

__all__ = [
    "LABEL",
    "LABEL_CLUSTER",
    "DockerBackend",
    "DockerNode",
    "availability",
    "connect_docker",
    "sweep_leftovers",
]

log = logging.getLogger(__name__)

PGDATA = "/var/lib/postgresql/data"  # pinned: postgres:18 moved its default
PRIMARY_ALIAS = "postgres-primary-lab"
STANDBY_ALIAS = "postgres-standby-lab"
RELAY_IN_CONTAINER = "/pgstandby-relay.pl"
SUPERVISOR = Path(__file__).with_name("supervisor.sh")
KEEP_FLAG = "/tmp/pgstandby-keep"  # supervisor.sh: from now on, keep the container up
SUPERVISOR_IN_CONTAINER = "/pgstandby-supervisor.sh"
PRIMARY_INIT = Path(__file__).with_name("primary-init.sh")
PRIMARY_INIT_IN_CONTAINER = "/pgstandby-primary-init.sh"
TEMPLATE_LABEL = "org.pgstandby.template"  # lab/image/Dockerfile: an initdb made at build
RELAY_PORT = "15432"  # on the container's own 127.0.0.1
_SIGNALS = {"smart": signal.SIGTERM, "fast": signal.SIGINT, "immediate": signal.SIGQUIT}
_SETUP_END = {
    "primary": "PostgreSQL init process complete; ready for start up.",
    "standby": "Starting standby server...",
}


@dataclass
class DockerNode(OwnedHandle):
    """One PostgreSQL container."""

    backend: DockerBackend
    name: str
    role: Role
    alias: str  # its name inside the cluster's network
    tc: Any  # testcontainers DockerContainer (use .container: it waits for a start under way)
    credentials: Credentials
    host: str = "127.0.0.1"
    data_dir: str = PGDATA
    upstream: DockerNode | None = None  # a standby's upstream: if it dies, stop waiting
    relay: ContainerRelay | None = None
    _port: int | None = field(default=None, repr=False)
    _kept: bool = field(default=False, repr=False)
    _starting: Future[None] | None = field(default=None, repr=False)
    _keeping: Future[Any] | None = field(default=None, repr=False)

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
        """The host port published on 127.0.0.1 (docker may pick a new one at each start)."""
        if self._port is None:
            self.container.reload()
            self._port = published_port(self.wrapped, self.name)
        return self._port

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
        server: see supervisor.sh)."""
        if self.status() != "running":
            return False
        return self._postmaster("kill -0") == 0

    def _postmaster(self, command: str) -> int:
        """Run ``command "$pid"`` on the postmaster inside the container (bash's kill
        builtin: images need not have procps); its exit code, 1 without a postmaster."""
        script = f'pid=$(head -n 1 "$PGDATA/postmaster.pid" 2>/dev/null) && {command} "$pid"'
        code, _ = self.container.exec(["bash", "-c", script])
        return int(code)

    def wait_ready(self) -> None:
        def exited() -> str | None:
            for node in filter(None, (self, self.upstream)):
                state = node.status()
                if state not in ("running", "created"):
                    return f"the container of {node.name} is {state}"
            return None

        wait_accepting(
            lambda: self.dsn,
            what=f"{self.name} ({self.container_name()}) to accept connections",
            timeout=self.backend.timeout,
            log=self.all_output,
            abort=exited,
        )
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

    def all_output(self) -> str:
        return bytes(self.wrapped.logs(stdout=True, stderr=True)).decode(errors="replace")

    def _split(self) -> tuple[str, str]:
        text = self.all_output()
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
        self._postmaster(f"kill -{_SIGNALS[mode].name.removeprefix('SIG')}")
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
        if self.status() == "running":
            self.container.exec(["bash", "-c", "kill -USR1 1"])
        else:
            self._port = None
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
        self._port = None
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
        """``docker pause``: the cgroup freezer stops every process of the container."""
        self.wrapped.pause()

    def resume(self) -> None:
        self.wrapped.unpause()

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


class DockerBackend:
    """Creates nodes as containers on a network of their own."""

    name = "docker"

    def __init__(self, image: str, timeout: float = 60.0, cluster_name: str | None = None) -> None:
        self.image = image
        self.timeout = timeout
        self.client = connect_docker()
        try:
            labels = self.client.images.get(image).labels or {}
        except docker.errors.ImageNotFound:
            raise ImageMissingError(
                f"image {image} is not in the local Docker engine, and pytest-pgstandby "
                "does not pull. Fix: `pgstandby image build --pg 15` (then "
                "--pgstandby-image=pgstandby/postgres:15), or `docker pull` the image where "
                "a registry is reachable, or pick another with --pgstandby-image / "
                "PGSTANDBY_IMAGE."
            ) from None
        if not os.environ.get("TESTCONTAINERS_RYUK_DISABLED"):
            # Our own labels and sweep do Ryuk's job; its image may not be pullable here.
            testcontainers_config.ryuk_disabled = True
        sweep_leftovers(self.client)
        self.cluster = cluster_name or uuid.uuid4().hex[:10]
        self.labels = {
            LABEL: "1",
            LABEL_OWNER_PID: str(os.getpid()),
            LABEL_OWNER_HOST: socket.gethostname(),
            LABEL_CLUSTER: self.cluster,
        }
        self._refuse_clash(f"pgstandby-{self.cluster}")
        self._refuse_clash(self.container_name("primary"))
        self.network = Network(docker_network_kw={"labels": dict(self.labels)})
        self.network.name = f"pgstandby-{self.cluster}"
        self.network.create()
        self.nodes: list[DockerNode] = []
        self.superuser_password = secrets.token_urlsafe(16)
        self.template = labels.get(TEMPLATE_LABEL)  # None: the image's own initdb runs
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="pgstandby-start")

    def container_name(self, node: str) -> str:
        return f"pgstandby-{self.cluster}-{node}"

    def node_by_container(self, name: str) -> DockerNode | None:
        return next((n for n in self.nodes if n.container_name() == name), None)

    def _refuse_clash(self, name: str) -> None:
        refuse_clash(self.client, name)

    def describe(self) -> str:
        return f"docker: image {self.image}, network pgstandby-{self.cluster}"

    def _container(self, node: str, alias: str) -> Any:
        self._refuse_clash(self.container_name(node))

        container = (
            DockerContainer(self.image)
            .with_name(self.container_name(node))
            .with_network(self.network)
            .with_network_aliases(alias)
            .with_envs(
                PGDATA=PGDATA,
                POSTGRES_PASSWORD=self.superuser_password,
                POSTGRES_REPLICATION_USER=REPLICATION_USER,
                POSTGRES_REPLICATION_PASSWORD=REPLICATION_PASSWORD,
            )
            .with_kwargs(labels=dict(self.labels))
        )
        # docker-py's (address, None) publishes on 127.0.0.1 only, at a free port;
        # testcontainers' with_bind_ports cannot take an address.
        container.ports["5432/tcp"] = ("127.0.0.1", None)  # type: ignore[assignment]
        return container

    def _start(self, node: DockerNode, wait: bool = True) -> DockerNode:
        self.nodes.append(node)
        if wait:
            node.container.start()
            node.wait_ready()
        else:
            # the Docker API's create+start takes ~0.4 s: let the next container's overlap it
            node._starting = self._pool.submit(node.tc.start)
        return node

    def create_primary(self, name: str) -> DockerNode:
        """Start the primary's container and return while it initialises: the standby's
        script waits for it with pg_isready, as the documented procedure does (and as
        docker-compose starts the lab), which saves a container start per cluster."""
        # With the image's initdb template, primary-init.sh runs the image's entrypoint with
        # a copy of it in place of initdb (0.05 s instead of 0.7 s); every other step of the
        # entrypoint, setup-primary.sh included, runs as it is.
        entrypoint = ["bash", SUPERVISOR_IN_CONTAINER, "docker-entrypoint.sh"]
        container = self._container(name, PRIMARY_ALIAS)
        if self.template:
            entrypoint[2:] = ["bash", PRIMARY_INIT_IN_CONTAINER]
            container = container.with_volume_mapping(str(PRIMARY_INIT), PRIMARY_INIT_IN_CONTAINER)
        container = (
            container.with_volume_mapping(
                str(lab_file("setup-primary.sh")),
                "/docker-entrypoint-initdb.d/10-setup-primary.sh",
            )
            # a test cluster needs no durable initdb (the local backend runs --no-sync too)
            .with_env("POSTGRES_INITDB_ARGS", "--no-sync")
            # in memory, as the standbys' (initdb 0.4 s instead of 1.2 s); it lives as long
            # as the container, which supervisor.sh keeps up across stop()/start()
            .with_tmpfs_mount(PGDATA)
            .with_volume_mapping(str(SUPERVISOR), SUPERVISOR_IN_CONTAINER)
            .with_kwargs(
                labels=dict(self.labels),
                entrypoint=entrypoint,
            )
            # the standby's pg_basebackup (no -c fast in the seed) waits for a spread
            # checkpoint: unthrottled, a test server's few buffers take milliseconds
            .with_command("postgres -c checkpoint_completion_target=0")
        )
        creds = Credentials(password=self.superuser_password)
        node = DockerNode(self, name, "primary", PRIMARY_ALIAS, container, creds)
        return self._start(node, wait=False)

    def create_standby(
        self, name: str, upstream: NodeHandle, slot: str | None = None
    ) -> DockerNode:
        """A container whose entrypoint is setup-standby.sh. ``upstream`` is the primary
        (the seed's default host) or, for a cascade, another standby of this cluster, which
        the script reaches under its alias: only the host value changes."""
        up = upstream if isinstance(upstream, DockerNode) else None
        if up is None or up.backend is not self:
            raise ValueError(
                f"the upstream of {name} must be a node of this Docker cluster, not {upstream!r}"
            )
        standbys = sum(1 for n in self.nodes if n.role == "standby")
        alias = STANDBY_ALIAS if standbys == 0 else f"{STANDBY_ALIAS}-{standbys + 1}"
        container = (
            self._container(name, alias)
            .with_volume_mapping(str(lab_file("setup-standby.sh")), "/setup-standby.sh")
            .with_volume_mapping(str(RELAY), RELAY_IN_CONTAINER)
        )
        if up.role != "primary":
            container = container.with_env("PGSTANDBY_PRIMARY_HOST", up.alias)
        # The seed's start command, with the standby's name as cluster_name (its WAL
        # receiver's application_name, by which the upstream knows it), run by a
        # supervisor that keeps the container and its data up while the server is
        # stopped, so that stop()/start() keep a standby's data as they do locally.
        container = container.with_volume_mapping(str(SUPERVISOR), SUPERVISOR_IN_CONTAINER)
        container = container.with_env(
            "PGSTANDBY_START_COMMAND",
            f"bash {SUPERVISOR_IN_CONTAINER} docker-entrypoint.sh postgres -D {PGDATA} "
            f"-c cluster_name={name}" + (f" -c primary_slot_name={slot}" if slot else ""),
            # a slot on the command line, not in postgresql.auto.conf, where a cascaded
            # standby cloned from this one would inherit a slot name that is not its own
        )
        container = (
            container.with_env("PGSTANDBY_POLL_INTERVAL", "0.02")
            # A standby's data is a copy that setup-standby.sh remakes at every start
            # anyway (step 2 empties it, step 3 clones it); in memory, pg_basebackup's
            # final sync of every file costs nothing.
            .with_tmpfs_mount(PGDATA)
            .with_kwargs(labels=dict(self.labels), entrypoint=["bash", "/setup-standby.sh"])
        )
        creds = Credentials(password=self.superuser_password)
        return self._start(DockerNode(self, name, "standby", alias, container, creds, upstream=up))

    def close(self, keep: bool = False) -> None:
        for node in self.nodes:  # a start still under way ends first, whatever its fate
            with contextlib.suppress(Exception):
                _ = node.container
        self._pool.shutdown()
        if keep:
            log.warning("keeping containers of cluster %s for inspection", self.cluster)
            return
        for node in reversed(self.nodes):
            try:
                node.remove()
            except docker.errors.NotFound:
                pass
            except Exception as exc:
                log.warning("could not remove %s: %s", node.name, exc)
        remove_network(self.network, timeout=60)
        self.client.close()
