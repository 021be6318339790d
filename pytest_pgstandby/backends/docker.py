"""Nodes as containers, on testcontainers: one user network per cluster with the seed's
aliases (``postgres-primary-lab``, ``postgres-standby-lab``); the primary from the image
with ``lab/setup-primary.sh`` in ``/docker-entrypoint-initdb.d/``, each standby running
``lab/setup-standby.sh`` as its entrypoint with the seed's default values (only the poll
interval is shortened). Ports are published on one address only, where the harness
connects: 127.0.0.1 for a local daemon, the address a remote daemon is reached by
(``engines.engine_address``).

Ryuk (testcontainers' reaper) needs an image that may not be pullable, so cleanup does not
depend on it: every container and network carries our labels, ``close()`` removes them,
and the next start sweeps labelled leftovers whose owning process is gone.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import shlex
import socket
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import docker
import docker.errors
from testcontainers.core.config import testcontainers_config
from testcontainers.core.network import Network

from ..binaries import MIN_MAJOR
from ..errors import (
    ImageMissingError,
    PgStandbyError,
    UnsupportedVersionError,
    VersionMismatchError,
)
from ..labfiles import lab_file
from . import docker_warm, reaper
from .base import RELAY, Credentials, NodeHandle
from .containers import (
    LABEL,
    LABEL_CLUSTER,
    LABEL_OWNER_HOST,
    LABEL_OWNER_PID,
    LABEL_OWNER_START,
    ImageFacts,
    availability,
    connect_docker,
    how_to_get,
    refuse_clash,
    remove_network,
    sweep_leftovers,
)
from .docker_node import (
    PGDATA,
    PRIMARY_ALIAS,
    PRIMARY_INIT,
    PRIMARY_INIT_IN_CONTAINER,
    RELAY_IN_CONTAINER,
    SHARED_DIR,
    STANDBY_ALIAS,
    SUPERVISOR,
    SUPERVISOR_IN_CONTAINER,
    TEMPLATE_LABEL,
    DockerNode,
    OneArchiveContainer,
    copied,
    restoring,
)
from .engines import EngineAddress, client_kw, engine_address, own_container, reached
from .owners import owner_stamp
from .values import (
    HARDENED_PRIMARY_VALUES,
    REPLICATION_PASSWORD,
    REPLICATION_USER,
    hardened_standby_values,
    passfile_line,
    server_settings,
)

__all__ = [
    "LABEL",
    "LABEL_CLUSTER",
    "PASSFILE_IN_CONTAINER",
    "PGDATA",
    "PRIMARY_ALIAS",
    "STANDBY_ALIAS",
    "DockerBackend",
    "DockerNode",
    "availability",
    "connect_docker",
    "copied",
    "sweep_leftovers",
]

log = logging.getLogger(__name__)

PASSFILE_IN_CONTAINER = "/var/lib/postgresql/pgstandby.pgpass"  # postgres's home, not PGDATA
# The script's stderr (pg_basebackup's -v/-P lines, then the server's log) joins its
# stdout in the container: Docker copies the two streams apart, and its log may then put
# "base backup completed" after the script's next echo, past where the setup output ends.
_SCRIPT = "bash /setup-standby.sh 2>&1"
_WRITE_PASSFILE_THEN_SCRIPT = (
    'umask 077 && printf "%s\\n" "$PGSTANDBY_PASSFILE_LINE" > "$PGPASSFILE" && '
    'chown postgres: "$PGPASSFILE" && unset PGSTANDBY_PASSFILE_LINE && '
    f"exec {_SCRIPT}"
)


def _judged_image(
    client: docker.DockerClient, image: str, major: str | None, engine: EngineAddress
) -> Any:
    """The image, once it is here and holds a PostgreSQL the procedure and the ``version``
    setting accept (judged from its labels / PG_MAJOR: no container is started)."""
    try:
        found = client.images.get(image)
    except docker.errors.ImageNotFound:
        where = "the local Docker engine"
        fix = how_to_get(image)
        if engine.how != "the default socket":
            where = f"the Docker engine at {engine.url}"
            fix += (
                f", or copy it there: `docker save {image} | DOCKER_HOST={engine.url} docker load`"
            )
        raise ImageMissingError(
            f"image {image} is not in {where}, and pytest-pgstandby does not pull. Fix: "
            f"{fix}, or pick another with --pgstandby-image / PGSTANDBY_IMAGE."
        ) from None
    held = ImageFacts.of(found).major
    if held is not None and held < MIN_MAJOR:
        raise UnsupportedVersionError(
            f"image {image} holds PostgreSQL {held} (its labels/PG_MAJOR say so), older "
            f"than {MIN_MAJOR}: the documented procedure writes standby.signal and "
            "primary_conninfo, which PostgreSQL reads from 12 on (recovery.conf before); no "
            "container was started. Fix: an image of PostgreSQL 12 or newer (`pgstandby "
            "image build --pg 13|15|17`)."
        )
    if major and held is not None and held != int(major):
        raise VersionMismatchError(
            f"version={major} was asked, but image {image} holds PostgreSQL {held} (its "
            "labels/PG_MAJOR say so); no container was started. Fix: `pgstandby image build "
            f"--pg {major} --force` to remake that tag, or drop --pgstandby-version to run "
            "the image as it is."
        )
    return found


def _remove_node(node: DockerNode) -> None:
    try:
        node.remove()
    except docker.errors.NotFound:
        pass
    except Exception as exc:
        log.warning("could not remove %s: %s", node.name, exc)


class DockerBackend:
    """Creates nodes as containers on a network of their own."""

    name = "docker"

    def __init__(
        self,
        image: str,
        timeout: float = 60.0,
        cluster_name: str | None = None,
        hardened: bool | None = False,
        major: str | None = None,
    ) -> None:
        self.image = image
        self.timeout = timeout
        #: what opens another backend like this one (a warm kit's); None for a named cluster
        self.args = None if cluster_name else (image, timeout, None, hardened, major)
        self.engine = engine_address()
        # None (the "auto" profile): hardened wherever other machines reach the servers,
        # for the documented profile's trust lines must never be an open door
        self.hardened = self.engine.exposed if hardened is None else hardened
        self.client = connect_docker()
        try:
            found = _judged_image(self.client, image, major, self.engine)
        except PgStandbyError:
            self.client.close()
            raise
        labels = found.labels or {}
        self.image_id = str(found.id)  # a snapshot's files are for this image only
        self.facts = ImageFacts.of(found)
        if not os.environ.get("TESTCONTAINERS_RYUK_DISABLED"):
            # Our own labels and sweep do Ryuk's job; its image may not be pullable here.
            testcontainers_config.ryuk_disabled = True
        sweep_leftovers(self.client)
        self.cluster = cluster_name or uuid.uuid4().hex[:10]
        self.labels = {
            LABEL: "1",
            LABEL_OWNER_PID: str(os.getpid()),
            LABEL_OWNER_START: owner_stamp().split()[-1],  # tells it from a reused pid
            LABEL_OWNER_HOST: socket.gethostname(),
            LABEL_CLUSTER: self.cluster,
        }
        self._refuse_clash(f"pgstandby-{self.cluster}")
        self._refuse_clash(self.container_name("primary"))
        self.network = Network(client_kw(), docker_network_kw={"labels": dict(self.labels)})
        self.network.name = self.network_name = f"pgstandby-{self.cluster}"
        self.network.create()
        # a job running in a container of this daemon joins the cluster's network and
        # reaches the servers by their addresses there: nothing is published
        self.joined = own_container(self.client) if not self.engine.exposed else None
        if self.joined is not None:
            self.client.networks.get(self.network_name).connect(self.joined.id)
        # the cluster's shared directory (backups, the WAL archive) in every container
        self.shared = self.client.volumes.create(
            name=f"pgstandby-{self.cluster}-shared", labels=dict(self.labels)
        )
        # killed before close(), even by SIGKILL: the reaper removes them within seconds
        self._labelled = (f"{LABEL_CLUSTER}={self.cluster}", f"{LABEL_OWNER_PID}={os.getpid()}")
        reaper.watch_docker(*self._labelled, self.engine.url)
        self.nodes: list[DockerNode] = []
        self.superuser_password = secrets.token_urlsafe(16)
        # the seed's in the documented profile (the lab's users expect it), random hardened
        self.replication_password = secrets.token_hex(16) if self.hardened else REPLICATION_PASSWORD
        self.template = labels.get(TEMPLATE_LABEL)  # None: the image's own initdb runs
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="pgstandby-start")
        self.made: docker_warm.Plan = []  # the node calls a build made (a kit replays them)
        self.held: dict[str, DockerNode] = {}  # a warm kit's containers, by node
        self._holding = False

    @classmethod
    def open(cls, image: str, timeout: float, hardened: bool | None, major: str | None) -> Any:
        """A cluster's backend: the warm kit made for these values if there is one."""
        args = (image, timeout, None, hardened, major)
        return docker_warm.take(args, cls.current) or cls(*args)

    def container_name(self, node: str) -> str:
        return f"pgstandby-{self.cluster}-{node}"

    def node_by_container(self, name: str) -> DockerNode | None:
        return next((n for n in self.nodes if n.container_name() == name), None)

    def _refuse_clash(self, name: str) -> None:
        refuse_clash(self.client, name)

    @property
    def runs_from(self) -> str:
        """The image, and the daemon where it is not the default socket (the summary of a
        suite spread over a pool of daemons names each)."""
        if self.engine.how == "the default socket":
            return self.image
        return f"{self.image} at {self.engine.url}"

    def describe(self) -> str:
        profile = "hardened" if self.hardened else "documented"
        where = reached(self.engine, self.joined, "joined the")
        return (
            f"docker: image {self.image}, network {self.network_name}, {where}; {profile} profile"
        )

    def container_spec(self, node: str, alias: str) -> Any:
        if node not in self.held:  # a kit's is ours, made under that name for this call
            self._refuse_clash(self.container_name(node))

        container = (
            OneArchiveContainer(self.image, docker_client_kw=client_kw())
            .with_name(self.container_name(node))
            .with_network(self.network)
            .with_network_aliases(alias)
            .with_envs(
                PGDATA=PGDATA,
                POSTGRES_PASSWORD=self.superuser_password,
                POSTGRES_REPLICATION_USER=REPLICATION_USER,
                POSTGRES_REPLICATION_PASSWORD=self.replication_password,
            )
            .with_kwargs(labels=dict(self.labels))
            .with_volume_mapping(self.shared.name, SHARED_DIR, "rw")
        )
        # docker-py's (address, None) publishes on that address only, at a free port;
        # testcontainers' with_bind_ports cannot take an address.
        if self.joined is None:
            container.ports["5432/tcp"] = (self.engine.publish_ip, None)  # type: ignore[assignment]
        return container

    def _with_passfile(self, container: Any) -> tuple[Any, list[str]]:
        """The hardened standby and its entrypoint: the replication password in a 0600
        passfile of the server's account (written before the script, from a variable then
        unset), and the script given an empty password, so that libpq reads the file and
        -R writes passfile= rather than the password."""
        line = passfile_line(REPLICATION_USER, self.replication_password).strip()
        envs = {"PGSTANDBY_PASSFILE_LINE": line, **hardened_standby_values(PASSFILE_IN_CONTAINER)}
        return container.with_envs(**envs), ["bash", "-c", _WRITE_PASSFILE_THEN_SCRIPT]

    def start_node(self, node: DockerNode, wait: bool = True) -> DockerNode:
        if self._holding:
            self.nodes.append(node)  # first: close() removes it if the hold fails
            docker_warm.hold(node, self.timeout)
            return node
        held = self.held.pop(node.name, None)
        taken = held is not None and docker_warm.adopt(held, node)
        if taken:  # this call's node (its upstream, ...) with the kit's running container
            node.tc._docker.client.close()  # the spec's client, never used
            node.tc = held.tc  # type: ignore[union-attr]
        elif held is not None:
            _remove_node(held)
        self.nodes.append(node)
        if not taken and not wait:
            # the Docker API's create+start takes ~0.4 s: let the next container's overlap it
            node._starting = self._pool.submit(node.tc.start)
        elif not taken:
            node.container.start()
        if wait:
            node.wait_ready()
        return node

    def hold_ahead(self, plan: docker_warm.Plan, stale: Callable[[], bool]) -> None:
        """Make and start, holding, the containers ``plan``'s calls make (docker_warm)."""
        self._holding = True
        try:
            docker_warm.replay(self, plan, stale)
        finally:
            self._holding = False
            self.held = {node.name: node for node in self.nodes}
            self.nodes, self.made = [], []

    def built(self, expected: bool | None) -> None:
        """A cluster was built here: a kit for the next one (docker_warm.built)."""
        args = self.args
        if args is not None:
            docker_warm.built(args, self.made, lambda: DockerBackend(*args), expected)

    def current(self) -> bool:
        """Whether the image under this backend's tag is still the one it judged."""
        try:
            return str(self.client.images.get(self.image).id) == self.image_id
        except docker.errors.ImageNotFound:
            return False

    def create_primary(self, name: str, restore: bytes | None = None) -> DockerNode:
        """Start the primary's container and return while it initialises: the standby's
        script waits for it with pg_isready, as the documented procedure does (and as
        docker-compose starts the lab), which saves a container start per cluster.
        ``restore``: a snapshot's archive of its data directory (``restoring``)."""
        # With the image's initdb template, primary-init.sh runs the image's entrypoint with
        # a copy of it in place of initdb (0.05 s instead of 0.7 s); every other step of the
        # entrypoint, setup-primary.sh included, runs as it is.
        entrypoint = ["bash", SUPERVISOR_IN_CONTAINER, "docker-entrypoint.sh"]
        container = self.container_spec(name, PRIMARY_ALIAS)
        if self.template:
            entrypoint[2:] = ["bash", PRIMARY_INIT_IN_CONTAINER]
            container = container.with_copy_into_container(
                *copied(PRIMARY_INIT, PRIMARY_INIT_IN_CONTAINER)
            )
        container = (
            container.with_copy_into_container(
                *copied(
                    lab_file("setup-primary.sh"), "/docker-entrypoint-initdb.d/10-setup-primary.sh"
                )
            )
            # a test cluster needs no durable initdb (the local backend runs --no-sync too)
            .with_env("POSTGRES_INITDB_ARGS", "--no-sync")
            # in memory, as the standbys' (initdb 0.4 s instead of 1.2 s); it lives as long
            # as the container, which supervisor.sh keeps up across stop()/start()
            .with_tmpfs_mount(PGDATA)
            .with_copy_into_container(*copied(SUPERVISOR, SUPERVISOR_IN_CONTAINER))
            .with_kwargs(
                labels=dict(self.labels),
                entrypoint=entrypoint,
            )
            .with_command(shlex.join(["postgres", *server_settings(name)]))
        )
        if self.hardened:
            container = container.with_envs(**HARDENED_PRIMARY_VALUES)
        container = restoring(container, restore)
        creds = Credentials(password=self.superuser_password)
        node = DockerNode(self, name, "primary", PRIMARY_ALIAS, container, creds)
        if restore is None:
            self.made.append((name, None, None))
        return self.start_node(node, wait=False)

    def create_standby(
        self,
        name: str,
        upstream: NodeHandle,
        slot: str | None = None,
        *,
        restore: bytes | None = None,
        alias: str | None = None,
        wait: bool = True,
    ) -> DockerNode:
        """A container whose entrypoint is setup-standby.sh. ``upstream`` is the primary
        (the seed's default host) or, for a cascade, another standby of this cluster, which
        the script reaches under its alias: only the host value changes. ``restore``: a
        snapshot's archive of its data directory, with ``alias``, the original's
        (``restoring``); ``wait=False`` returns while it starts."""
        up = upstream if isinstance(upstream, DockerNode) else None
        if up is None or up.backend is not self:
            raise ValueError(
                f"the upstream of {name} must be a node of this Docker cluster, not {upstream!r}"
            )
        standbys = sum(1 for n in self.nodes if n.role == "standby")
        alias = alias or (STANDBY_ALIAS if standbys == 0 else f"{STANDBY_ALIAS}-{standbys + 1}")
        container = (
            self.container_spec(name, alias)
            .with_copy_into_container(*copied(lab_file("setup-standby.sh"), "/setup-standby.sh"))
            .with_copy_into_container(*copied(RELAY, RELAY_IN_CONTAINER))
        )
        if up.role != "primary":
            container = container.with_env("PGSTANDBY_PRIMARY_HOST", up.alias)
        # The seed's start command, with the standby's name as cluster_name (its WAL
        # receiver's application_name, by which the upstream knows it), run by a
        # supervisor that keeps the container and its data up while the server is
        # stopped, so that stop()/start() keep a standby's data as they do locally.
        container = container.with_copy_into_container(*copied(SUPERVISOR, SUPERVISOR_IN_CONTAINER))
        container = container.with_env(
            "PGSTANDBY_START_COMMAND",
            shlex.join(["bash", SUPERVISOR_IN_CONTAINER, *self.server_command(name, slot)]),
        )
        container = (
            container.with_env("PGSTANDBY_POLL_INTERVAL", "0.02")
            # A standby's data is a copy that setup-standby.sh remakes at every start
            # anyway (step 2 empties it, step 3 clones it); in memory, pg_basebackup's
            # final sync of every file costs nothing.
            .with_tmpfs_mount(PGDATA)
        )
        entrypoint = ["bash", "-c", f"exec {_SCRIPT}"]
        if self.hardened:
            container, entrypoint = self._with_passfile(container)
        container = container.with_kwargs(labels=dict(self.labels), entrypoint=entrypoint)
        container = restoring(container, restore)
        creds = Credentials(password=self.superuser_password)
        node = DockerNode(self, name, "standby", alias, container, creds, upstream=up, slot=slot)
        if restore is None and wait:
            self.made.append((name, up.name, slot))
        return self.start_node(node, wait=wait)

    @staticmethod
    def server_command(name: str, slot: str | None = None) -> list[str]:
        """The seed's start command with the harness's settings (``server_settings``)."""
        return ["docker-entrypoint.sh", "postgres", "-D", PGDATA, *server_settings(name, slot)]

    def create_node(self, name: str) -> DockerNode:
        """A container whose supervisor waits, with an empty data directory (a tmpfs the
        servers' account owns), for start(): then the image's entrypoint runs the server on
        what the model put there."""
        alias = f"postgres-{name.replace('_', '-')}-lab"
        container = (
            self.container_spec(name, alias)
            .with_copy_into_container(*copied(RELAY, RELAY_IN_CONTAINER))
            .with_copy_into_container(*copied(SUPERVISOR, SUPERVISOR_IN_CONTAINER))
            .with_env("PGSTANDBY_START_IDLE", "1")
            .with_tmpfs_mount(PGDATA)
        )
        container = container.with_kwargs(
            labels=dict(self.labels),
            entrypoint=["bash", SUPERVISOR_IN_CONTAINER, *self.server_command(name)],
        )
        creds = Credentials(password=self.superuser_password)
        node = DockerNode(self, name, "standby", alias, container, creds, from_backup=True)
        self.nodes.append(node)
        node.container.start()
        node._exec(["sh", "-c", f"chown postgres: {PGDATA} && chmod 700 {PGDATA}"], {}, 30, "root")
        node._kept = True  # its supervisor keeps it from the start
        return node

    def close(self, keep: bool = False) -> None:
        self.nodes += self.held.values()  # a kit's not taken: nothing to keep in them
        self.held = {}
        for node in self.nodes:  # a start still under way ends first, whatever its fate
            with contextlib.suppress(Exception):
                _ = node.container
        self._pool.shutdown()
        if keep:
            log.warning("keeping containers of cluster %s for inspection", self.cluster)
        else:
            # side by side: each removal is a stop and a delete the daemon takes ~0.2 s for
            try:
                with ThreadPoolExecutor(max(1, len(self.nodes)), "pgstandby-remove") as pool:
                    list(pool.map(_remove_node, reversed(self.nodes)))
            except RuntimeError:  # no thread at the interpreter's exit (a kit's drain)
                for node in reversed(self.nodes):
                    _remove_node(node)
            if self.joined is not None:
                with contextlib.suppress(docker.errors.APIError):
                    self.client.networks.get(self.network_name).disconnect(
                        self.joined.id, force=True
                    )
            remove_network(self.network, timeout=60)
            with contextlib.suppress(docker.errors.NotFound):
                self.shared.remove(force=True)
        reaper.release_docker(self._labelled[0])
        # testcontainers gives every container and network a docker-py client of its own:
        # closed here, or each cluster would hold ~15 sockets until a garbage collection
        for made in [*(n.tc for n in self.nodes), self.network]:
            with contextlib.suppress(Exception):
                made._docker.client.close()
        self.client.close()
