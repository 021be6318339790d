"""What any server in a Docker container needs, the harness's own or someone else's: a
client as testcontainers configures it, reading the data directory through ``docker
exec``, and the address a peer in the same network uses. The Docker backend and external
servers named by container both use these, so no Docker call is written twice.
"""

from __future__ import annotations

import contextlib
import functools
import io
import logging
import os
import socket
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import docker
import docker.errors
from testcontainers.core.docker_client import DockerClient, get_docker_host

from .._wait import poll_until
from ..config import split_tag
from ..errors import (
    DockerUnavailableError,
    FilesUnavailableError,
    NameClashError,
    SetupFailedError,
    WaitTimeoutError,
)
from .base import LOOPBACK, PeerAddress, Reach
from .engines import (
    EngineAddress,
    client_kw,
    default_profile,
    engine_address,
    no_daemon,
    own_container,
    reached,
    remember_api_version,
    tolerate_ended_ssh,
)
from .owners import owner_alive

log = logging.getLogger(__name__)

LABEL = "org.pgstandby"
LABEL_OWNER_PID = "org.pgstandby.owner-pid"
LABEL_OWNER_START = "org.pgstandby.owner-start"  # with the pid, proves the owner is gone
LABEL_OWNER_HOST = "org.pgstandby.owner-host"
LABEL_CLUSTER = "org.pgstandby.cluster"


def connect_docker(timeout: float = 10.0) -> docker.DockerClient:
    """A docker-py client as testcontainers configures it (``DOCKER_HOST``, ``TC_HOST``,
    docker contexts), checked with a ping. The caller closes it."""
    if (get_docker_host() or "").startswith("ssh://"):
        tolerate_ended_ssh()  # docker/docker-py#3218
    try:
        client: docker.DockerClient = DockerClient(timeout=int(timeout), **client_kw()).client
        client.ping()
        remember_api_version(client)
    except Exception as exc:
        where = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
        raise DockerUnavailableError(no_daemon(where, exc)) from None
    return client


#: the image's PostgreSQL major: our label (lab/image/Dockerfile), else the official
#: images' PG_MAJOR environment variable
MAJOR_LABEL = "org.pgstandby.pg-major"
SUITE_LABEL = "org.pgstandby.debian-suite"


@dataclass(frozen=True)
class ImageFacts:
    """What an image says of itself without running it: labels and environment."""

    major: int | None
    suite: str | None
    pgdata: str | None

    @classmethod
    def of(cls, image: Any) -> ImageFacts:
        config = image.attrs.get("Config") or {}
        labels = config.get("Labels") or {}
        env = dict(e.split("=", 1) for e in config.get("Env") or [] if "=" in e)
        raw = labels.get(MAJOR_LABEL) or env.get("PG_MAJOR") or ""
        major = int(raw) if raw.isdigit() else None
        return cls(major, labels.get(SUITE_LABEL), env.get("PGDATA"))

    def describe(self) -> str:
        if self.major is None:
            return "PostgreSQL major not labelled"
        return f"PostgreSQL {self.major}" + (f", Debian {self.suite}" if self.suite else "")


def pg_version_in(client: docker.DockerClient, container: str, pgdata: str) -> str | None:
    """``PG_VERSION`` of a container's data directory, read through the container whether
    it runs or not (its volume's, when one is mounted there); None without one."""
    try:
        stream, _ = client.containers.get(container).get_archive(f"{pgdata}/PG_VERSION")
    except (docker.errors.NotFound, docker.errors.APIError):
        return None
    with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tar:
        member = tar.extractfile("PG_VERSION")
        return member.read().decode().strip() if member else None


def volume_at(client: docker.DockerClient, container: str, path: str) -> str | None:
    """The name of the volume a container mounts at ``path``, if any."""
    try:
        mounts = client.containers.get(container).attrs.get("Mounts", [])
    except docker.errors.NotFound:
        return None
    return next((m.get("Name") for m in mounts if m.get("Destination") == path), None)


def availability(image: str) -> tuple[bool, str]:
    """Whether the Docker backend can run ``image`` now, and why (or why not)."""
    try:
        client = connect_docker(timeout=3)
    except DockerUnavailableError as exc:
        return False, str(exc)
    try:
        facts = ImageFacts.of(client.images.get(image))
    except docker.errors.ImageNotFound:
        return False, f"image {image} is not present ({how_to_get(image)})"
    finally:
        client.close()
    return True, f"Docker daemon answers and image {image} is present ({facts.describe()})"


def how_to_get(image: str) -> str:
    """How to make ``image`` here: the lab image's build for a pgstandby/postgres tag."""
    repo, tag = split_tag(image)
    tag = tag or ""
    if repo == "pgstandby/postgres" and tag.isdigit():
        return f"build it: `pgstandby image build --pg {tag}`"
    # the official postgres:13 asks for 13 (as a version=13 makes of postgres:17)
    major = tag if tag.isdigit() and repo.rpartition("/")[2] == "postgres" else "15"
    return (
        f"`pgstandby image build --pg {major}` (then --pgstandby-image=pgstandby/postgres:"
        f"{major}), or `docker pull {image}` where a registry is reachable"
    )


def _remove(thing: Any, **kwargs: Any) -> int:
    """Remove a leftover; another session sweeping at the same moment (an xdist worker)
    may be removing it already (404, or 409 "removal ... is already in progress")."""
    try:
        thing.remove(**kwargs)
    except docker.errors.NotFound:
        return 0
    except docker.errors.APIError as exc:
        if exc.status_code != 409:
            raise
        log.debug("%s is being removed by another session: %s", thing.name, exc)
        return 0
    return 1


def _network_gone(network: Any) -> bool:
    """Removed now, or by someone else already; an APIError (endpoints still attached,
    their containers going) means not yet. A container still attached that is not ours
    (the job container of a dead session, which joined the network) is disconnected."""
    try:
        network.remove()
    except docker.errors.NotFound:
        return True
    except docker.errors.APIError:
        if hasattr(network, "reload"):  # docker-py's (a sweep, the reaper)
            with contextlib.suppress(docker.errors.APIError):
                network.reload()
                for container in network.attrs.get("Containers") or {}:
                    network.disconnect(container, force=True)
        raise
    return True


def remove_network(network: Any, timeout: float) -> bool:
    """Remove a network whose containers were just removed (their endpoints may linger
    for a moment); False, with a warning, if it is still there after ``timeout``."""
    try:
        poll_until(
            functools.partial(_network_gone, network),
            what=f"network {network.name} removed",
            timeout=timeout,
        )
        return True
    except WaitTimeoutError as exc:
        log.warning("%s", exc)
        return False


def _stamp(labels: dict[str, str]) -> str:
    return f"{labels.get(LABEL_OWNER_PID, '0')} {labels.get(LABEL_OWNER_START, '')}"


def sweep_leftovers(client: docker.DockerClient) -> int:
    """Remove our labelled containers and networks whose owning process (on this host)
    is gone, e.g. after a pytest killed with SIGKILL. Returns how many were removed."""
    host = socket.gethostname()
    removed = 0
    mine = {"label": [f"{LABEL}=1", f"{LABEL_OWNER_HOST}={host}"]}
    # ignore_removed: a container that goes between the list and its inspect (another
    # worker's teardown) is not an error here
    for container in client.containers.list(all=True, filters=mine, ignore_removed=True):
        if not owner_alive(_stamp(container.labels)):
            removed += _remove(container, force=True, v=True)
    for network in client.networks.list(filters=mine):
        if not owner_alive(_stamp(network.attrs.get("Labels") or {})):
            # its containers may still be going (another session's sweep): wait a little
            removed += remove_network(network, timeout=10)
    for volume in client.volumes.list(filters=mine):
        if not owner_alive(_stamp(volume.attrs.get("Labels") or {})):
            removed += _remove(volume, force=True)
    if removed:
        log.info("removed %d leftover container(s)/network(s)/volume(s) of dead processes", removed)
    return removed


def _error_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class ContainerFiles:
    """The data directory of a server in a container, read with ``cat`` / ``test -e``
    through ``docker exec``, for harness containers and someone else's alike."""

    def __init__(
        self,
        container: str,
        execute: Callable[[list[str]], tuple[int, bytes]],
        data_dir: Callable[[], str],
    ) -> None:
        self.container = container
        self._execute = execute
        self._data_dir = data_dir

    def path(self, relpath: str) -> str:
        if relpath.startswith("/") or ".." in relpath.split("/"):
            raise ValueError(f"{relpath!r} is outside the data directory of {self.container}")
        base = self._data_dir().rstrip("/")
        return f"{base}/{relpath}" if relpath else base

    def location(self, relpath: str = "") -> str:
        try:
            return f"{self.container}:{self.path(relpath)}"
        except FilesUnavailableError:
            return f"{self.container}:?"

    def _run(self, *argv: str) -> tuple[int, str]:
        try:
            code, out = self._execute(list(argv))
        except Exception as exc:
            raise FilesUnavailableError(
                f"cannot run {argv[0]} in container {self.container}: {_error_line(exc)}"
            ) from None
        return int(code), bytes(out).decode(errors="replace")

    def read(self, relpath: str) -> str:
        path = self.path(relpath)
        code, out = self._run("cat", path)
        if code == 0:
            return out
        if "No such file" in out:
            raise FileNotFoundError(f"{self.container}:{path}: {out.strip()}")
        raise FilesUnavailableError(f"cannot read {self.container}:{path}: {out.strip()}")

    def exists(self, relpath: str) -> bool:
        return self._run("test", "-e", self.path(relpath))[0] == 0

    def reach(self, host: str, port: int) -> Reach:
        """Resolve with ``getent hosts`` and probe with ``pg_isready`` inside the container:
        the two tools every PostgreSQL image has (``ping`` it may not)."""
        where = f"container {self.container}"
        code, out = self._run("getent", "hosts", host)
        if code != 0:
            seen = f"`getent hosts {host}` in {self.container} found nothing (exit {code})"
            return Reach(host, port, (), False, seen, where)
        addresses = tuple(dict.fromkeys(line.split()[0] for line in out.splitlines() if line))
        code, out = self._run("pg_isready", "-h", host, "-p", str(port), "-t", "3")
        seen = f"`pg_isready -h {host} -p {port}` in {self.container}: {out.strip()}"
        # 0 accepting, 1 rejecting (starting up): both answer; 2 no response, 3 no attempt
        return Reach(host, port, addresses, code in (0, 1), seen, where)


def container_address(container: Any, peer: Any | None, published_port: str) -> PeerAddress:
    """How a peer reaches a server in ``container`` (docker-py objects): inside the Docker
    networks the two share, by alias, DNS name, IP or container name, at the container
    port that ``published_port`` (the port the test process uses) maps to."""
    container.reload()
    networks: dict[str, Any] = container.attrs["NetworkSettings"]["Networks"] or {}
    names = set(networks)
    if peer is not None:
        peer.reload()
        names &= set(peer.attrs["NetworkSettings"]["Networks"] or {})
    hosts: list[str] = []
    for name in sorted(names):
        net = networks[name]
        hosts += list(net.get("Aliases") or []) + list(net.get("DNSNames") or [])
        if net.get("IPAddress"):
            hosts.append(str(net["IPAddress"]))
    hosts.append(str(container.name).lstrip("/"))
    port = "5432"
    for spec, bindings in (container.attrs["NetworkSettings"].get("Ports") or {}).items():
        if any(str(b.get("HostPort")) == published_port for b in bindings or []):
            port = str(spec.split("/")[0])
    where = ", ".join(sorted(names)) or "no shared network"
    return PeerAddress(list(dict.fromkeys(hosts)), port, f"container {container.name} in {where}")


@functools.cache
def _lookup_client(docker_host: str | None) -> docker.DockerClient:
    return connect_docker()


def find_container(name: str) -> Any:
    """A container someone else runs, by name or id (FilesUnavailableError if none). One
    client per process serves these look-ups."""
    try:
        return _lookup_client(os.environ.get("DOCKER_HOST")).containers.get(name)
    except Exception as exc:
        raise FilesUnavailableError(f"no container {name!r}: {_error_line(exc)}") from None


def container_env(container: Any, key: str) -> str | None:
    for item in container.attrs.get("Config", {}).get("Env") or []:
        if item.startswith(f"{key}="):
            return str(item.split("=", 1)[1])
    return None


def ahead_of_entrypoint(container: Any, *argv: str) -> Any:
    """``container`` whose entrypoint runs after ``argv`` (which ends in ``exec "$@"``)."""
    kwargs = dict(container._kwargs)  # with_kwargs replaces them all
    kwargs["entrypoint"] = [*argv, *kwargs["entrypoint"]]
    return container.with_kwargs(**kwargs)


def refuse_clash(client: docker.DockerClient, name: str) -> None:
    """Refuse a name that a container or network already uses, touching nothing."""
    for kind in (client.containers, client.networks):
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


def published_port(container: Any, what: str, ip: str = "127.0.0.1") -> int:
    """The host port a (reloaded) container publishes 5432 on at ``ip``."""
    bindings = container.attrs["NetworkSettings"]["Ports"].get("5432/tcp") or []
    ours = [b for b in bindings if b.get("HostIp") == (ip or "0.0.0.0")]
    if not ours:
        raise WaitTimeoutError(f"{what} has no port published on {ip or 'any address'} yet")
    return int(ours[0]["HostPort"])


class ContainerRelay:
    """A relay process inside a container (backends/relay.pl), started by a detached
    ``docker exec`` so that it is no child of the server, and signalled by its pid."""

    REPORT = "/tmp/pgstandby-relay"  # relay.pl writes "<port> <pid>" there once it listens

    def __init__(self, container: Any, name: str) -> None:
        self.container = container
        self.name = name
        self.pid: str | None = None

    def open(self, argv: list[str]) -> None:
        self.container.exec_run([*argv, self.REPORT], detach=True)

        def report() -> str:
            code, out = self.container.exec_run(["cat", self.REPORT])
            if code != 0:
                raise FileNotFoundError(f"{self.REPORT} not written yet")
            return bytes(out).decode().split()[1]

        self.pid = poll_until(report, what=f"the relay in {self.name}", timeout=30)

    def signal(self, sig: str) -> None:
        # bash's kill builtin: images need not have procps' kill
        code, out = self.container.exec_run(["bash", "-c", f"kill -{sig} {self.pid}"])
        if code != 0:
            raise SetupFailedError(f"could not signal the relay in {self.name}: {out!r}")


_LOOPBACK = (*LOOPBACK, "")


_ANY_OR_LOOPBACK = ("127.0.0.1", "0.0.0.0", "::", "")


def _publishes(container: Any, port: int, addresses: tuple[str, ...]) -> bool:
    ports = container.attrs["NetworkSettings"].get("Ports") or {}
    return any(
        str(b.get("HostPort")) == str(port) and b.get("HostIp") in addresses
        for bindings in ports.values()
        for b in bindings or []
    )


def _addressed(container: Any, host: str, port: int) -> bool:
    """``host:port`` is the container's own address in one of its networks, its port 5432."""
    networks = container.attrs["NetworkSettings"].get("Networks") or {}
    return port == 5432 and any(n.get("IPAddress") == host for n in networks.values())


def container_publishing(host: str, port: int, beside: Any) -> Any | None:
    """The container that publishes ``port`` where ``host`` reaches the daemon (this
    machine's loopback, or a remote daemon's address), or whose own address in a network
    is ``host`` (a job that joined it), and shares a Docker network with ``beside``
    (docker-py objects): how a primary given only by ``<host>:<port>`` is found when its
    standby runs in a container. None unless exactly one matches (nothing is guessed from
    names)."""
    engine = engine_address()
    addresses: tuple[str, ...]
    if host in _LOOPBACK and not engine.exposed:
        addresses = _ANY_OR_LOOPBACK
    elif host in (engine.host, engine.publish_ip) and engine.exposed:
        addresses = (engine.publish_ip, "0.0.0.0", "::", "")
    else:
        addresses = ()  # a container's own address (this process joined its network)
    beside.reload()
    found: dict[str, Any] = {}
    client = _lookup_client(os.environ.get("DOCKER_HOST"))
    for name in beside.attrs["NetworkSettings"]["Networks"] or {}:
        try:
            members = client.networks.get(name).attrs.get("Containers") or {}
        except docker.errors.NotFound:
            continue
        for member_id in members:
            try:  # a member may go between the network's inspect and its own
                member = client.containers.get(member_id)
            except docker.errors.NotFound:
                continue
            if _publishes(member, port, addresses) or _addressed(member, host, port):
                found[member.id] = member
    return next(iter(found.values())) if len(found) == 1 else None


def pool_problems(urls: tuple[str, ...], image: str) -> list[str]:
    """What keeps each daemon of a pool from running ``image``, one line each with its
    fix (asked before the first test: a worker should not find out at its first
    cluster). Empty when every daemon answers and holds the image."""
    missing, problems, holders = [], [], []
    for url in urls:
        try:
            client = docker.DockerClient(base_url=url, timeout=5)
            try:
                client.images.get(image)
            finally:
                client.close()
            holders.append(url)
        except docker.errors.ImageNotFound:
            missing.append(url)
        except docker.errors.DockerException as exc:
            why = str(exc).split(":")[0]
            problems.append(
                f"{url}: no answer ({why}). Fix: start that daemon, correct its address, or "
                "take it out of --pgstandby-docker-hosts."
            )
    for url in missing:
        fix = how_to_get(image)
        if holders:
            fix = f"`DOCKER_HOST={holders[0]} docker save {image} | DOCKER_HOST={url} docker load`"
        problems.append(f"{url}: image {image} is not there. Fix: {fix}.")
    return problems


def engine_view() -> tuple[EngineAddress, docker.DockerClient, Any | None]:
    """The daemon as the Docker backend finds it, a client of it (the caller closes it),
    and this process's own container on it (None: not in one, or a remote daemon)."""
    engine = engine_address()
    client = connect_docker()
    return engine, client, None if engine.exposed else own_container(client)


def engine_status(profile: str) -> str | None:
    """For the header: the daemon the Docker backend would use, why, how its servers are
    reached from here, and the profile they run (None: no daemon answers)."""
    try:
        engine, client, joined = engine_view()
    except DockerUnavailableError:
        return None
    client.close()
    return f"{reached(engine, joined)}; {default_profile(engine, profile)}"
