"""The classroom lab (lab/docker-compose.yml): its names, its ports, and the verbs that
bring it up, take it down, and show it. ``pgstandby lab ...`` (cli.py) calls these."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import psycopg
from psycopg.conninfo import make_conninfo

from .. import assertions as a
from .._text import mask_secrets
from .._wait import poll_until
from ..backends.base import CONTAINER_PGDATA
from ..errors import PgStandbyError
from ..labfiles import lab_dir

LAB_IMAGE_DEFAULT = "pgstandby/postgres:15"
PGDATA = CONTAINER_PGDATA  # lab/docker-compose.yml pins it
LAB_PASSWORD_DEFAULT = "postgres"  # lab/docker-compose.yml's POSTGRES_PASSWORD default


def compose_command() -> list[str]:
    """Debian's docker-compose (v1) or the docker compose plugin, whichever is here."""
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    probe = subprocess.run(["docker", "compose", "version"], capture_output=True)
    if probe.returncode == 0:
        return ["docker", "compose"]
    raise PgStandbyError(
        "neither `docker-compose` nor `docker compose` is installed. Fix: "
        "`apt-get install docker-compose` (Debian) or install the compose plugin."
    )


def _lab_container(env: dict[str, str], role: str) -> str:
    """The lab's container names (docker-compose.yml's variables and their defaults)."""
    return env.get(f"PGSTANDBY_LAB_{role.upper()}_CONTAINER") or f"postgres-{role}-lab"


def _lab_dsn(env: dict[str, str], role: str, address: str | None = None) -> str:
    """The lab's server of ``role``: its published port on 127.0.0.1, or port 5432 at
    ``address`` (its address in the lab's network)."""
    port = env.get(f"PGSTANDBY_LAB_{role.upper()}_PORT", "5432" if role == "primary" else "5433")
    password = env.get("POSTGRES_PASSWORD", LAB_PASSWORD_DEFAULT)
    return make_conninfo(
        host=address or "127.0.0.1", port="5432" if address else port, user="postgres",
        password=password, dbname="postgres",
    )  # fmt: skip


def _lab_running(env: dict[str, str], role: str) -> bool | None:
    """Whether the lab's container of ``role`` runs (None: it does not exist)."""
    try:
        out = subprocess.run(
            ["docker", "inspect", "-f", "{{.State.Running}}", _lab_container(env, role)],
            capture_output=True,
            text=True,
            env=env,
        )
    except FileNotFoundError:
        raise PgStandbyError(
            "the docker command is not installed. Fix: bash lab/setup-host.sh (Debian: "
            "apt-get install docker.io), or grade a pair by its ports: pgstandby check "
            "--primary DSN --standby DSN."
        ) from None
    if out.returncode == 0:
        return out.stdout.strip() == "true"
    if "No such object" in out.stderr or "No such container" in out.stderr:
        return None
    # not "absent": Docker did not answer this account (no daemon, no permission)
    raise PgStandbyError(
        f"cannot ask Docker about the lab's {role} ({_lab_container(env, role)}): "
        f"{out.stderr.strip().splitlines()[-1] if out.stderr.strip() else 'no answer'}. Fix: "
        "start a daemon if none runs (`dockerd &` as root), or run as root or a member of "
        "the docker group; without Docker, grade the pair by its ports: pgstandby check "
        "--primary DSN --standby DSN."
    )


def _require_lab_up(env: dict[str, str], running: bool = True) -> None:
    states = {role: _lab_running(env, role) for role in ("primary", "standby")}
    down = [
        f"{_lab_container(env, r)} ({'stopped' if s is False else 'absent'})"
        for r, s in states.items()
        if s is None or (running and not s)
    ]
    if down:
        raise PgStandbyError(
            f"the lab is not up: {', '.join(down)}. Fix: pgstandby lab up (then pgstandby "
            "lab check); for a pair you built yourself, pgstandby check --primary DSN "
            "--standby DSN."
        )


def _refuse_taken_ports(env: dict[str, str]) -> None:
    """Before anything is created: each lab port must be free on 127.0.0.1, unless the lab
    itself already holds it (a second `lab up` is a no-op)."""
    for role, default in (("primary", "5432"), ("standby", "5433")):
        with contextlib.suppress(PgStandbyError):  # Docker silent: up's own check says why
            if _lab_running(env, role):
                continue
        var = f"PGSTANDBY_LAB_{role.upper()}_PORT"
        port = env.get(var, default)
        other = int(port) % 50000 + 10000
        with socket.socket() as probe:
            # as Docker binds: a port whose last connections linger in TIME_WAIT is free
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(("127.0.0.1", int(port)))
            except OSError as exc:
                raise PgStandbyError(
                    f"cannot bring the lab up: host port {port} for the {role} ({var}) is "
                    f"taken on 127.0.0.1 ({exc.strerror}); nothing was created. Fix: stop "
                    f"what listens there, or choose another port: {var}={other} "
                    "pgstandby lab up (pgstandby lab check then finds it by the same "
                    "variable)."
                ) from None


#: What `up` waits for: the standby streams (the lab, most exercises), or only answers
#: (an exercise whose standby never streams).
WAITS = ("streaming", "accepting", "not streaming")


def _wait_lab(
    env: dict[str, str], timeout: float, until: str = "streaming", dsn: str | None = None
) -> None:
    """Wait (bounded) until the lab's standby is in state ``until`` (one of WAITS); the
    error shows its log tail. ``dsn``: the standby as this process reaches it."""
    standby_dsn = dsn or _lab_dsn(env, "standby")

    def status() -> str:
        with psycopg.connect(standby_dsn, connect_timeout=2) as conn:
            row = conn.execute("SELECT status FROM pg_stat_wal_receiver").fetchone()
        return "streaming" if row == ("streaming",) else "not streaming"

    def reached() -> bool:
        now = status()
        return until == "accepting" or now == until

    def standby_log() -> str:
        out = subprocess.run(
            ["docker", "logs", "--tail", "30", _lab_container(env, "standby")],
            capture_output=True,
            text=True,
        )
        return out.stdout + out.stderr

    last_look = [0.0]

    def exited() -> str | None:
        """A lab container that exited never comes back by waiting (it has no restart
        policy): a data directory of another major, files the server account cannot
        read. Said at once, with its last log lines, not after the timeout."""
        if time.monotonic() - last_look[0] < 2.0:
            return None
        last_look[0] = time.monotonic()
        for role in ("primary", "standby"):
            if _lab_running(env, role) is not False:
                continue
            name = _lab_container(env, role)
            out = subprocess.run(
                ["docker", "logs", "--tail", "5", name], capture_output=True, text=True
            )
            lines = [line for line in (out.stdout + out.stderr).splitlines() if line.strip()]
            return f"the lab's {role} ({name}) has exited" + (
                f"; its log ends: {' / '.join(lines[-2:])}" if lines else ""
            )
        return None

    what = {"accepting": "accept connections"}.get(until, f"be {until}")
    poll_until(
        reached,
        what=f"the lab's standby to {what}",
        timeout=timeout,
        interval=0.2,
        log=standby_log,
        abort=exited,
    )


def _refuse_another_major(env: dict[str, str], client: Any, image: str) -> None:
    """`up` over a lab whose primary volume holds another major's data directory: the new
    image's server would refuse it ("database files are incompatible with server")."""
    from ..backends.containers import ImageFacts, pg_version_in, volume_at

    name = _lab_container(env, "primary")
    pgdata = env.get("PGSTANDBY_LAB_PGDATA") or PGDATA
    had = pg_version_in(client, name, pgdata)
    wants = ImageFacts.of(client.images.get(image)).major
    if had and had.isdigit() and wants is not None and int(had) != wants:
        volume = volume_at(client, name, pgdata)
        where = f"its volume {volume}" if volume else "its data directory"
        raise PgStandbyError(
            f"the lab's primary keeps a PostgreSQL {had} data directory ({where}), which "
            f"{image} (PostgreSQL {wants}) cannot read; nothing was changed. Fix: `pgstandby "
            "lab down` (removes the lab's containers and volumes, and its data), then "
            f"`pgstandby lab up --image {image}`; or keep a PostgreSQL {had} image."
        )


class Lab:
    """The compose lab as the environment names it (project, containers, ports)."""

    def __init__(self, env: dict[str, str] | None = None, image: str | None = None) -> None:
        self.env = dict(os.environ if env is None else env)
        if image:
            self.env["PGSTANDBY_IMAGE"] = image
        self.env.setdefault("PGSTANDBY_IMAGE", LAB_IMAGE_DEFAULT)
        self._engine: LabEngine | None = None

    @property
    def engine(self) -> LabEngine:
        """Where the daemon runs and how this process reaches the lab (asked once)."""
        if self._engine is None:
            self._engine = LabEngine.find()
        return self._engine

    def compose(self, *args: str, extra_env: dict[str, str] | None = None) -> int:
        base = [*compose_command(), "-f", str(lab_dir() / "docker-compose.yml")]
        return subprocess.call([*base, *args], env={**self.env, **(extra_env or {})})

    def container(self, role: str) -> str:
        return _lab_container(self.env, role)

    def dsn(self, role: str) -> str:
        """The lab's server of ``role`` as this process reaches it: its published port on
        127.0.0.1, or its address in the lab's network from a job's container."""
        if self.engine.joined is None:
            return _lab_dsn(self.env, role)
        return _lab_dsn(self.env, role, self.engine.join(self.container(role)))

    def server(self, role: str) -> a.Server:
        return a.Server(self.dsn(role), container=self.container(role))

    def servers(self, running: bool = True) -> tuple[a.Server, a.Server]:
        """The running lab pair (an error that says `pgstandby lab up` if it is not up;
        ``running=False``: containers that exist, running or not, for the doctor)."""
        _require_lab_up(self.env, running)
        self.engine.refuse_remote("reach the lab's servers")
        return self.server("primary"), self.server("standby")

    def up(
        self, timeout: float, extra_env: dict[str, str] | None = None, until: str = "streaming"
    ) -> int:
        """`docker-compose up -d`, then wait until the standby streams (``extra_env``: an
        exercise's variant of the lab's variables; ``until``: one of WAITS)."""
        self._preflight()
        code = self.compose("up", "-d", extra_env=extra_env)
        if code != 0:
            return code
        print(f"waiting for the standby (docker logs -f {self.container('standby')} shows "
              "its setup)")  # fmt: skip
        self.wait(timeout, until)
        return 0

    def wait(self, timeout: float, until: str = "streaming") -> None:
        _wait_lab(self.env, timeout, until, self.dsn("standby"))

    def _preflight(self) -> None:
        # first: a refusal must leave nothing half-made
        try:
            engine: LabEngine | None = self.engine
        except PgStandbyError:
            engine = None  # no daemon answers: said below, after the ports
        if engine is not None:
            engine.refuse_unseen(lab_dir())
        _refuse_taken_ports(self.env)
        # imported here: docker-py and testcontainers cost ~0.2 s, and only `up` needs them
        from ..backends.docker import availability, connect_docker

        client = connect_docker()  # no daemon: an error that says how to start one
        try:
            usable, why = availability(self.env["PGSTANDBY_IMAGE"])
            if not usable:
                raise PgStandbyError(
                    f"cannot bring the lab up: {why}. Fix: `pgstandby image build --pg 15`, "
                    "or `docker pull` an official image and pass --image."
                )
            _refuse_another_major(self.env, client, self.env["PGSTANDBY_IMAGE"])
        finally:
            client.close()

    def down(self) -> int:
        with contextlib.suppress(PgStandbyError):  # no daemon: compose says so itself
            self.engine.leave(self.container("primary"))  # else its network stays in use
        # its volumes go too, so nothing is lost by not waiting: a standby still in the
        # script's section 1 (bash as PID 1 ignores SIGTERM) held `down` for docker's 10 s
        return self.compose("down", "-v", "--timeout", "1")

    def streaming_line(self) -> str:
        return (
            f"lab pair is streaming: primary {mask_secrets(self.dsn('primary'))}, "
            f"standby {mask_secrets(self.dsn('standby'))}. Grade it: pgstandby lab check"
        )


class LabEngine:
    """The daemon the lab runs on, as seen from here: a local one (the lab's ports on
    127.0.0.1), the one this process's own container runs on (a CI job in a container:
    it joins the lab's network and connects by address, nothing published is needed), or
    a remote one, which can neither read this machine's lab/ scripts nor be reached on
    its host's 127.0.0.1, where the lab publishes its documented `trust` lines."""

    def __init__(self, address: Any, client: Any, joined: Any | None) -> None:
        self.address = address  # engines.EngineAddress
        self.client = client
        self.joined = joined  # this process's own container, or None

    @classmethod
    def find(cls) -> LabEngine:
        from ..backends.containers import engine_view

        return cls(*engine_view())  # no daemon: an error that says how to start one

    def refuse_remote(self, doing: str) -> None:
        if not self.address.exposed:
            return
        raise PgStandbyError(
            f"cannot {doing}: the daemon is on another host ({self.address.describe()}). "
            "The lab mounts its scripts from this machine's lab/ directory and publishes "
            "its servers, whose pg_hba.conf has the procedure's `trust` lines, on the "
            "daemon host's 127.0.0.1 only; neither works from here, by design. Fix: run "
            "`pgstandby lab ...` on the daemon's host (ssh there), or test a pair the "
            "plugin builds on that daemon (pytest --pgstandby-backend docker: hardened "
            "there, reached where the daemon publishes)."
        )

    def refuse_unseen(self, path: Path) -> None:
        """`up` only where the daemon reads the compose file's bind mounts (``path``) at
        the path this process sees: never a remote daemon; from a container only when
        that directory is mounted at its own path (-v $PWD:$PWD)."""
        self.refuse_remote("bring the lab up")
        if self.joined is None:
            return
        target = path.resolve()
        for mount in self.joined.attrs.get("Mounts") or []:
            source, dest = mount.get("Source"), mount.get("Destination")
            if mount.get("Type") == "bind" and source == dest and target.is_relative_to(dest):
                return
        raise PgStandbyError(
            f"cannot bring the lab up from container {self.joined.name}: the compose file "
            f"mounts the lab's scripts from {target}, a path the daemon resolves on its own "
            "host, where this container's files are not. Nothing was created. Fix: mount "
            "the checkout at the same path in the job's container (docker run -v "
            "$PWD:$PWD -w $PWD ...) and run lab up from there, or run lab up on the host; "
            "lab check and lab doctor then work from this container."
        )

    def _network(self, container: str) -> tuple[str, str]:
        """``container``'s (first) network, and its address there."""
        networks = self.client.containers.get(container).attrs["NetworkSettings"]["Networks"]
        name = next(iter(networks))
        return str(name), str(networks[name]["IPAddress"])

    def join(self, container: str) -> str:
        """``container``'s address in its network, which this process's container joins
        first (once)."""
        own = self.joined
        if own is None:
            raise RuntimeError("join() is for a process in one of the daemon's containers")
        network, address = self._network(container)
        own.reload()
        if network not in own.attrs["NetworkSettings"]["Networks"]:
            self.client.networks.get(network).connect(own.id)
        return address

    def leave(self, container: str) -> None:
        """Out of ``container``'s network (before `down` removes it), if joined."""
        if self.joined is None:
            return
        with contextlib.suppress(Exception):  # gone already, or the daemon went
            self.client.networks.get(self._network(container)[0]).disconnect(
                self.joined.id, force=True
            )
