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

import logging
import os
import secrets
import signal
import socket
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import docker
import docker.errors
from psycopg.conninfo import make_conninfo

from .._wait import poll_until
from ..errors import (
    DockerUnavailableError,
    ImageMissingError,
    NameClashError,
    WaitTimeoutError,
)
from ..labfiles import lab_file
from .base import (
    REPLICATION_PASSWORD,
    REPLICATION_USER,
    Credentials,
    NodeHandle,
    Role,
    StopMode,
    pid_alive,
    wait_accepting,
)

log = logging.getLogger(__name__)

LABEL = "org.pgstandby"
LABEL_OWNER_PID = "org.pgstandby.owner-pid"
LABEL_OWNER_HOST = "org.pgstandby.owner-host"
LABEL_CLUSTER = "org.pgstandby.cluster"
PGDATA = "/var/lib/postgresql/data"  # pinned: postgres:18 moved its default
PRIMARY_ALIAS = "postgres-primary-lab"
STANDBY_ALIAS = "postgres-standby-lab"
_SIGNALS = {"smart": signal.SIGTERM, "fast": signal.SIGINT, "immediate": signal.SIGQUIT}
_SETUP_END = {
    "primary": "PostgreSQL init process complete; ready for start up.",
    "standby": "Starting standby server...",
}


def connect_docker(timeout: float = 10.0) -> docker.DockerClient:
    try:
        client = docker.from_env(timeout=int(timeout))
        client.ping()
    except Exception as exc:
        where = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
        raise DockerUnavailableError(
            f"no Docker daemon answers at {where} ({type(exc).__name__}: {exc}). Fix: start "
            "one (`dockerd &` as root, or `systemctl start docker`), set DOCKER_HOST, or use "
            "--pgstandby-backend=local."
        ) from None
    return client


def availability(image: str) -> tuple[bool, str]:
    """Whether the Docker backend can run ``image`` now, and why (or why not)."""
    try:
        client = connect_docker(timeout=3)
    except DockerUnavailableError:
        return False, "no Docker daemon answers"
    try:
        client.images.get(image)
    except docker.errors.ImageNotFound:
        return False, f"image {image} is not present (build it: pgstandby image build)"
    finally:
        client.close()
    return True, f"Docker daemon answers and image {image} is present"


def sweep_leftovers(client: docker.DockerClient) -> int:
    """Remove our labelled containers and networks whose owning process (on this host)
    is gone, e.g. after a pytest killed with SIGKILL. Returns how many were removed."""
    host = socket.gethostname()
    removed = 0
    mine = {"label": [f"{LABEL}=1", f"{LABEL_OWNER_HOST}={host}"]}
    for container in client.containers.list(all=True, filters=mine):
        if not pid_alive(int(container.labels.get(LABEL_OWNER_PID, "0"))):
            container.remove(force=True, v=True)
            removed += 1
    for network in client.networks.list(filters=mine):
        if not pid_alive(int(network.attrs.get("Labels", {}).get(LABEL_OWNER_PID, "0"))):
            network.remove()
            removed += 1
    if removed:
        log.info("removed %d leftover container(s)/network(s) of dead processes", removed)
    return removed


@dataclass
class DockerNode:
    """One PostgreSQL container."""

    backend: DockerBackend
    name: str
    role: Role
    container: Any  # testcontainers DockerContainer
    credentials: Credentials
    host: str = "127.0.0.1"
    data_dir: str = PGDATA
    upstream: DockerNode | None = None  # a standby's primary: if it dies, stop waiting
    _port: int | None = field(default=None, repr=False)

    @property
    def wrapped(self) -> Any:
        return self.container.get_wrapped_container()

    @property
    def port(self) -> int:
        """The host port published on 127.0.0.1 (docker may pick a new one at each start)."""
        if self._port is None:
            self.wrapped.reload()
            bindings = self.wrapped.attrs["NetworkSettings"]["Ports"].get("5432/tcp") or []
            ours = [b for b in bindings if b.get("HostIp") == "127.0.0.1"]
            if not ours:
                raise WaitTimeoutError(f"{self.name} has no port published on 127.0.0.1 yet")
            self._port = int(ours[0]["HostPort"])
        return self._port

    def status(self) -> str:
        self.wrapped.reload()
        return str(self.wrapped.status)

    def is_running(self) -> bool:
        return self.status() == "running"

    def conninfo(self) -> str:
        c = self.credentials
        return make_conninfo(
            host=self.host, port=self.port, user=c.user, password=c.password, dbname=c.dbname
        )

    def wait_ready(self) -> None:
        def exited() -> str | None:
            for node in filter(None, (self, self.upstream)):
                state = node.status()
                if state not in ("running", "created"):
                    return f"the container of {node.name} is {state}"
            return None

        wait_accepting(
            self.conninfo,
            what=f"{self.name} ({self.wrapped.name}) to accept connections",
            timeout=self.backend.timeout,
            log=self.all_output,
            abort=exited,
        )

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

    def _exec(self, *argv: str) -> tuple[int, str]:
        code, out = self.wrapped.exec_run(list(argv))
        return int(code), bytes(out).decode(errors="replace")

    def _path(self, relpath: str) -> str:
        if relpath.startswith("/") or ".." in relpath.split("/"):
            raise ValueError(f"{relpath!r} is outside the data directory of {self.name}")
        return f"{self.data_dir}/{relpath}"

    def read_file(self, relpath: str) -> str:
        code, out = self._exec("cat", self._path(relpath))
        if code != 0:
            raise FileNotFoundError(f"{self.name}:{self._path(relpath)}: {out.strip()}")
        return out

    def exists(self, relpath: str) -> bool:
        return self._exec("test", "-e", self._path(relpath))[0] == 0

    def _wait_exited(self, timeout: float, what: str) -> None:
        poll_until(
            lambda: self.status() in ("exited", "dead"),
            what=f"{self.name} to stop after {what}",
            timeout=timeout,
            log=self.log,
        )

    def stop(self, mode: StopMode = "fast", timeout: float = 60.0) -> None:
        if not self.is_running():
            return
        self.wrapped.kill(signal=_SIGNALS[mode])
        self._wait_exited(timeout, f"a {mode} shutdown")

    def start(self) -> None:
        """Start the container again. For a standby this reruns setup-standby.sh, which
        makes a fresh base backup: the seed's own restart behaviour."""
        if self.is_running():
            return
        self._port = None
        self.wrapped.start()
        self.wait_ready()

    def kill(self) -> None:
        if self.is_running():
            self.wrapped.kill(signal=signal.SIGKILL)
            self._wait_exited(30, "SIGKILL")


class DockerBackend:
    """Creates nodes as containers on a network of their own."""

    name = "docker"

    def __init__(self, image: str, timeout: float = 60.0, cluster_name: str | None = None) -> None:
        from testcontainers.core.config import testcontainers_config
        from testcontainers.core.network import Network

        self.image = image
        self.timeout = timeout
        self.client = connect_docker()
        try:
            self.client.images.get(image)
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
        self._refuse_clash(self._container_name("primary"))
        self.network = Network(docker_network_kw={"labels": dict(self.labels)})
        self.network.name = f"pgstandby-{self.cluster}"
        self.network.create()
        self.nodes: list[DockerNode] = []
        self.superuser_password = secrets.token_urlsafe(16)

    def _container_name(self, node: str) -> str:
        return f"pgstandby-{self.cluster}-{node}"

    def _refuse_clash(self, name: str) -> None:
        """Refuse a name that a container or network already uses, touching nothing."""
        for kind in (self.client.containers, self.client.networks):
            try:
                found = kind.get(name)
            except docker.errors.NotFound:
                continue
            labels = found.attrs.get("Config", {}).get("Labels") or found.attrs.get("Labels") or {}
            owner = "ours from another run" if labels.get(LABEL) == "1" else "not ours"
            raise NameClashError(
                f"a Docker {kind.model.__name__.lower()} named {name!r} already exists "
                f"({owner}); it was left untouched. Fix: remove or rename it yourself, or "
                "choose another cluster name."
            )

    def describe(self) -> str:
        return f"docker: image {self.image}, network pgstandby-{self.cluster}"

    def _container(self, node: str, alias: str) -> Any:
        from testcontainers.core.container import DockerContainer

        self._refuse_clash(self._container_name(node))

        container = (
            DockerContainer(self.image)
            .with_name(self._container_name(node))
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
        node.container.start()
        if wait:
            node.wait_ready()
        return node

    def create_primary(self, name: str) -> DockerNode:
        """Start the primary's container and return while it initialises: the standby's
        script waits for it with pg_isready, as the documented procedure does (and as
        docker-compose starts the lab), which saves a container start per cluster."""
        container = (
            self._container(name, PRIMARY_ALIAS)
            .with_volume_mapping(
                str(lab_file("setup-primary.sh")),
                "/docker-entrypoint-initdb.d/10-setup-primary.sh",
            )
            # a test cluster needs no durable initdb (the local backend runs --no-sync too)
            .with_env("POSTGRES_INITDB_ARGS", "--no-sync")
        )
        creds = Credentials(password=self.superuser_password)
        return self._start(DockerNode(self, name, "primary", container, creds), wait=False)

    def create_standby(self, name: str, primary: NodeHandle) -> DockerNode:
        standbys = sum(1 for n in self.nodes if n.role == "standby")
        alias = STANDBY_ALIAS if standbys == 0 else f"{STANDBY_ALIAS}-{standbys + 1}"
        container = (
            self._container(name, alias)
            .with_volume_mapping(str(lab_file("setup-standby.sh")), "/setup-standby.sh")
            .with_env("PGSTANDBY_POLL_INTERVAL", "0.1")
            # A standby's data is a copy that setup-standby.sh remakes at every start
            # anyway (step 2 empties it, step 3 clones it); in memory, pg_basebackup's
            # final sync of every file costs nothing.
            .with_tmpfs_mount(PGDATA)
            .with_kwargs(labels=dict(self.labels), entrypoint=["bash", "/setup-standby.sh"])
        )
        creds = Credentials(password=self.superuser_password)
        upstream = primary if isinstance(primary, DockerNode) else None
        return self._start(DockerNode(self, name, "standby", container, creds, upstream=upstream))

    def close(self, keep: bool = False) -> None:
        if keep:
            log.warning("keeping containers of cluster %s for inspection", self.cluster)
            return
        deadline = time.monotonic() + 60
        for node in reversed(self.nodes):
            try:
                node.wrapped.remove(force=True, v=True)
            except docker.errors.NotFound:
                pass
            except Exception as exc:
                log.warning("could not remove %s: %s", node.name, exc)
        while time.monotonic() < deadline:
            try:
                self.network.remove()
                break
            except docker.errors.NotFound:
                break
            except docker.errors.APIError:
                time.sleep(0.1)  # endpoints of just-removed containers may linger briefly
        self.client.close()
