"""The compose lab under a project, container names and ports of a test's own, so that a
classroom lab someone has up is never touched (tests/docker/test_compose_lab.py,
tests/docker/test_exercises.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg

from pytest_pgstandby.backends.ports import free_port
from pytest_pgstandby.classroom.labctl import compose_command
from pytest_pgstandby.labfiles import lab_dir

LAB = lab_dir()
COMPOSE_FILE = LAB / "docker-compose.yml"
BUILD_SH = LAB / "image" / "build.sh"

PG_MAJOR = "15"
IMAGE = f"pgstandby/postgres:{PG_MAJOR}"
PGDATA = "/var/lib/postgresql/data"
SUPERUSER = "postgres"
PASSWORD = "postgres"

WAIT_TIMEOUT = 60.0
POLL_INTERVAL = 0.1
BUILD_TIMEOUT = 1800
COMPOSE_TIMEOUT = 300


def run(
    cmd: list[str], *, timeout: float = 120, env: dict[str, str] | None = None, check: bool = False
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        cmd, capture_output=True, text=True, timeout=timeout, env=env, stdin=subprocess.DEVNULL
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"{' '.join(cmd)} exited {result.returncode}\n"
            f"--- stdout (tail) ---\n{tail(result.stdout)}\n"
            f"--- stderr (tail) ---\n{tail(result.stderr)}"
        )
    return result


def tail(text: str, lines: int = 60) -> str:
    return "\n".join(text.splitlines()[-lines:])


class ComposeLab:
    """One `docker-compose -p <project>` instance of lab/docker-compose.yml."""

    def __init__(self, project: str, primary_port: int, standby_port: int) -> None:
        self.project = project
        # container names of its own: a classroom lab (the default names) may be running
        self.primary = f"{project}-primary"
        self.standby = f"{project}-standby"
        self.primary_port = primary_port
        self.standby_port = standby_port
        self.compose = [*compose_command(), "-f", str(COMPOSE_FILE), "-p", project]
        self.env = dict(os.environ)
        self.env.update(
            {
                "PGSTANDBY_IMAGE": IMAGE,
                "PGSTANDBY_LAB_PRIMARY_PORT": str(primary_port),
                "PGSTANDBY_LAB_STANDBY_PORT": str(standby_port),
                "PGSTANDBY_LAB_PRIMARY_CONTAINER": self.primary,
                "PGSTANDBY_LAB_STANDBY_CONTAINER": self.standby,
                "PGSTANDBY_POLL_INTERVAL": "0.1",
                "POSTGRES_PASSWORD": PASSWORD,
                "POSTGRES_REPLICATION_USER": "replicator",
                "POSTGRES_REPLICATION_PASSWORD": "replicator_password",
            }
        )
        self.env.pop("COMPOSE_FILE", None)
        self.env.pop("COMPOSE_PROJECT_NAME", None)
        self.volumes_seen: set[str] = set()

    def run(
        self, *args: str, timeout: float = COMPOSE_TIMEOUT, check: bool = False
    ) -> subprocess.CompletedProcess[str]:
        return run(self.compose + list(args), timeout=timeout, env=self.env, check=check)

    def pgstandby(self, *args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
        """`pgstandby lab ARGS` on this lab (its project, names and ports)."""
        return subprocess.run(
            [sys.executable, "-m", "pytest_pgstandby.cli", "lab", *args],
            env=self.env,
            stdin=subprocess.DEVNULL,  # no terminal: a question is refused, never hangs
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def logs(self, lines: int = 40) -> str:
        try:
            out = self.run("logs", "--no-color", f"--tail={lines}", timeout=60)
        except subprocess.TimeoutExpired:
            return "--- docker-compose logs timed out ---"
        return (
            f"--- docker-compose logs (last {lines} lines per service) ---\n"
            + (out.stdout + out.stderr).rstrip()
        )

    def dsn(self, port: int) -> dict[str, object]:
        return {
            "host": "127.0.0.1",
            "port": port,
            "user": SUPERUSER,
            "password": PASSWORD,
            "dbname": "postgres",
            "connect_timeout": 3,
            "autocommit": True,
        }

    def connect(self, port: int):
        return psycopg.connect(**self.dsn(port))

    def remember_volumes(self) -> None:
        """Every volume mounted by the project's containers, named or anonymous."""
        for name in (self.primary, self.standby):
            out = run(
                [
                    "docker",
                    "inspect",
                    "--format",
                    "{{range .Mounts}}{{if .Name}}{{.Name}} {{end}}{{end}}",
                    name,
                ]
            )
            if out.returncode == 0:
                self.volumes_seen.update(out.stdout.split())

    def leftovers(self) -> dict[str, list[str]]:
        label = f"label=com.docker.compose.project={self.project}"
        found = {
            "containers": run(["docker", "ps", "-a", "-q", "--filter", label]).stdout.split(),
            "networks": run(["docker", "network", "ls", "-q", "--filter", label]).stdout.split(),
            "volumes": run(["docker", "volume", "ls", "-q", "--filter", label]).stdout.split(),
        }
        existing = set(run(["docker", "volume", "ls", "-q"]).stdout.split())
        found["volumes"] += sorted((self.volumes_seen & existing) - set(found["volumes"]))
        return {kind: ids for kind, ids in found.items() if ids}


@contextmanager
def own_lab(prefix: str, **env: str) -> Iterator[ComposeLab]:
    """A compose lab of the test's own (project, container names, free ports) that
    `pgstandby lab` commands run against; removed after, and checked to leave nothing."""
    lab = ComposeLab(f"{prefix}-{os.getpid()}-{uuid.uuid4().hex[:6]}", free_port(), free_port())
    lab.env["COMPOSE_PROJECT_NAME"] = lab.project  # what `pgstandby lab` runs compose with
    lab.env.update(env)
    try:
        yield lab
    finally:
        lab.remember_volumes()
        down = lab.run("down", "-v", "--remove-orphans")
        assert down.returncode == 0, down.stderr
        assert not lab.leftovers(), lab.leftovers()
