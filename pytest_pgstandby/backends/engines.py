"""Which container engine, and where its servers are reached from this process: the daemon
testcontainers picks, the one address its ports are published on (127.0.0.1 for a local
socket, the host a remote daemon is reached by), and the container this process itself
runs in, when it runs in one of that daemon's (it then joins each cluster's network)."""

from __future__ import annotations

import contextlib
import grp
import os
import pwd
import re
import socket
import stat
import subprocess
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import docker.errors

from ..errors import DockerUnavailableError
from .base import LOOPBACK


@dataclass(frozen=True)
class EngineAddress:
    """Which daemon, and where its published ports are reached from this process."""

    url: str  # the daemon, as docker-py was given it
    how: str  # why this daemon (DOCKER_HOST, a docker context, tc.host, the default socket)
    host: str  # where this process connects to a published port
    publish_ip: str  # the one address ports are published on (never all, when one works)

    @property
    def exposed(self) -> bool:
        """Whether other machines (and their users) may reach what is published."""
        return self.publish_ip not in LOOPBACK

    def describe(self) -> str:
        where = f"published on {self.publish_ip} only"
        if not self.publish_ip:
            where = "published on every address of the daemon's host (its own is unknown here)"
        if self.exposed:
            where += ", which other machines reach"
        return f"daemon {self.url} ({self.how}); servers reached at {self.host}, {where}"


def reached(engine: EngineAddress, joined: Any | None, verb: str = "joins each") -> str:
    """Which daemon, why, and how this process reaches its servers: published on one
    address, or (``joined``: this process's own container) at their addresses in each
    cluster's network."""
    if joined is None:
        return engine.describe()
    return (
        f"daemon {engine.url} ({engine.how}); this process runs in its container "
        f"{joined.name}, which {verb} cluster's network: servers reached at their addresses "
        "there, nothing published"
    )


def default_profile(engine: EngineAddress, asked: str) -> str:
    """The profile a cluster on ``engine`` runs, and why, for the header."""
    if asked != "auto":
        warn = (
            " (WARNING: trust lines where other machines reach them)"
            if (asked == "documented" and engine.exposed)
            else ""
        )
        return f"{asked} profile, as asked{warn}"
    if engine.exposed:
        return "hardened profile (auto: other machines reach what is published here)"
    return "documented profile (auto: nothing is reachable from other machines)"


_CONTAINER_ID = re.compile(r"containers/([0-9a-f]{64})/")


def own_container(client: docker.DockerClient) -> Any | None:
    """The container this process runs in on ``client``'s daemon (a CI job run in a
    container with the daemon's socket mounted), or None. Its id is read from where the
    engine mounted /etc/hostname (``/proc/self/mountinfo``), and the daemon must know
    it: a stray ``/.dockerenv`` is no evidence."""
    try:
        text = Path("/proc/self/mountinfo").read_text()
    except OSError:
        return None
    # only the line mounting /etc/hostname (field 5, the mount point; field 4 is the
    # source): a host's mount table lists every running container's files too (Podman's
    # overlay-containers/<id>/userdata/shm), which named a stranger as this process's own
    sources = [
        f[3] for f in (line.split() for line in text.splitlines()) if f[4:5] == ["/etc/hostname"]
    ]
    for cid in dict.fromkeys(_CONTAINER_ID.findall("\n".join(sources) + "\n")):
        try:
            return client.containers.get(cid)
        except docker.errors.NotFound:
            continue
        except docker.errors.APIError:
            return None
    return None


def tolerate_ended_ssh() -> None:
    """testcontainers talks to an ``ssh://`` daemon through the ssh command (paramiko
    fails under pytest's captured stdin), and docker-py's socket for it raises
    BrokenPipeError on close when the ssh process has ended first, which it does after
    every ``exec_run`` (the daemon ends the hijacked stream): docker/docker-py#3218, open.
    Closing such a socket then only ends the process, once per interpreter."""
    try:
        from docker.transport import sshconn
    except ImportError:
        raise DockerUnavailableError(
            "the Docker daemon is named by an ssh:// address, and docker-py reaches one only "
            "with paramiko, which is not installed. Fix: pip install 'pytest-pgstandby[ssh]' "
            "(or paramiko), or give a tcp:// or unix:// DOCKER_HOST."
        ) from None

    original = sshconn.SSHSocket.close
    if getattr(original, "_pgstandby_tolerant", False):
        return

    def close(self: Any) -> None:
        try:
            original(self)
        except BrokenPipeError:  # the ssh process is gone: nothing left to say to it
            with contextlib.suppress(OSError):
                self.proc.stdin.close()
            self.proc.terminate()

    close._pgstandby_tolerant = True  # type: ignore[attr-defined]
    sshconn.SSHSocket.close = close


def ssh_hostname(alias: str) -> str:
    """The host an ``ssh://alias`` daemon is at: ``HostName`` of ~/.ssh/config as ssh
    itself resolves it (``ssh -G``), which is where docker-py connects too; else
    ``alias``."""
    try:
        out = subprocess.run(
            ["ssh", "-G", alias], capture_output=True, text=True, timeout=5, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return alias
    for line in out.splitlines():
        key, _, value = line.partition(" ")
        if key == "hostname" and value.strip():
            return value.strip()
    return alias


def engine_address() -> EngineAddress:
    """The daemon testcontainers picks (``tc.host`` in ~/.testcontainers.properties,
    ``DOCKER_HOST``, the current docker context, else the local socket) and the address its
    published ports are reached at: the host of a ``tcp://`` or ``ssh://`` daemon,
    ``TC_HOST`` / ``TESTCONTAINERS_HOST_OVERRIDE`` when set, 127.0.0.1 for a local socket.
    testcontainers' own guess for a local socket inside a container (the default gateway)
    is not taken: a machine with a stray ``/.dockerenv`` is not one."""
    from testcontainers.core.config import testcontainers_config

    url = daemon_url()
    if testcontainers_config.tc_properties_get_tc_host():
        how = "tc.host in ~/.testcontainers.properties"
    elif os.environ.get("DOCKER_HOST"):
        how = "DOCKER_HOST"
    elif url != "unix:///var/run/docker.sock":
        how = "the current docker context"
    else:
        how = "the default socket"
    override = os.environ.get("TC_HOST") or os.environ.get("TESTCONTAINERS_HOST_OVERRIDE")
    parsed = urllib.parse.urlparse(url)
    host = override or (parsed.hostname if parsed.scheme in ("tcp", "ssh", "http", "https") else "")
    if parsed.scheme == "ssh":
        tolerate_ended_ssh()
        if not override and host:
            host = ssh_hostname(host)
    if not host or host in LOOPBACK:
        return EngineAddress(url, how, "127.0.0.1", "127.0.0.1")
    try:
        publish_ip = socket.gethostbyname(host)
    except OSError:
        publish_ip = ""  # unknown here: every address of the daemon's host
    if publish_ip.startswith("127."):
        publish_ip = "127.0.0.1"
    if override:
        how += f", reached as TC_HOST={override}"
    return EngineAddress(url, how, host, publish_ip)


#: the API version each daemon negotiated, by its URL: docker-py asks GET /version at every
#: client it makes ("auto"), which takes Podman ~0.5 s (it runs conmon and the OCI runtime
#: to report their versions), and a cluster makes a client per network and per node
_API_VERSIONS: dict[str, str] = {}


def daemon_url() -> str:
    """The daemon testcontainers picks (``engine_address`` says how and where)."""
    from testcontainers.core.docker_client import get_docker_host

    return get_docker_host() or "unix:///var/run/docker.sock"


def client_kw() -> dict[str, str]:
    """Keywords for a docker-py client of the daemon testcontainers picks: the API version
    it negotiated before in this process (none yet: {}, and docker-py asks)."""
    version = _API_VERSIONS.get(daemon_url())
    return {"version": version} if version else {}


def remember_api_version(client: docker.DockerClient) -> None:
    _API_VERSIONS.setdefault(daemon_url(), str(client.api.api_version))


def no_daemon(where: str, exc: BaseException) -> str:
    """Why no daemon answers at ``where``, with the fix. A local socket that refuses this
    account is named as such: its daemon runs, and starting one is not the fix."""
    seen = f"{type(exc).__name__}: {exc}"
    path = where.removeprefix("unix://")
    if where.startswith("unix://") and ("PermissionError" in seen or "Permission denied" in seen):
        me = pwd.getpwuid(os.geteuid()).pw_name
        try:
            st = os.stat(path)
            group = grp.getgrgid(st.st_gid).gr_name
            owner = f"{pwd.getpwuid(st.st_uid).pw_name}:{group} {stat.filemode(st.st_mode)}"
        except (OSError, KeyError):
            group, owner = "docker", "unreadable"
        return (
            f"the Docker daemon's socket {path} refuses the account {me!r} (permission "
            f"denied; the socket is {owner}). Fix: add the account to the {group!r} group "
            f"(`usermod -aG {group} {me}` as root, then log in again), point DOCKER_HOST at a "
            "daemon this account may use (rootless Docker or Podman), or use "
            "--pgstandby-backend=local."
        )
    return (
        f"no Docker daemon answers at {where} ({seen}). Fix: start one (`dockerd &` as "
        "root, or `systemctl start docker`), set DOCKER_HOST, or use "
        "--pgstandby-backend=local."
    )
