"""A primary, and a standby whose ``lab/setup-standby.sh`` runs one piece at a time
(``pgstandby lab walkthrough``): each piece in a fresh ``bash``, where and as whom the
backend runs the whole script, with the environment it gives the script. The last
section ``exec``s the server, so it runs in the background and is tracked like any other
server of the backend, whose ``close()`` removes everything.

Local: the pieces run as the servers' account, as ``bash <file>`` in the session's
``lab/`` directory; the standby is a ``LocalNode`` of the session. Docker: the standby is
a container of the same image on the primary's network, with the seed's alias and the
backend's labels, whose main process only waits (``sleep infinity``); each piece is a
``docker exec`` as root, as the image's entrypoint runs the whole script.
"""

from __future__ import annotations

import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from ..labfiles import lab_file
from .base import Credentials, NodeHandle, wait_accepting
from .local import LocalBackend
from .local_node import LocalNode

if TYPE_CHECKING:  # imported where used: docker-py and testcontainers cost ~0.2 s
    from .docker import DockerBackend, DockerNode

# Section 7's bash writes its pid here; the server it execs keeps that pid (the image's
# entrypoint and gosu exec too), so the file names the postmaster.
_PIDFILE = "/tmp/pgstandby-walkthrough.pid"


@dataclass(frozen=True)
class Ran:
    """What one piece of the script did: its exit status (None: it did not finish within
    the bound and was stopped) and its output, stdout and stderr in order."""

    status: int | None
    output: str


class Steps(Protocol):
    """A primary and a standby made one piece of the script at a time."""

    @property
    def primary(self) -> NodeHandle: ...
    @property
    def standby(self) -> NodeHandle: ...
    def describe(self) -> str:
        """Where the servers live and who runs the script's pieces, for the reader."""

    def owned(self) -> list[str]:
        """Everything made for the walkthrough (servers, directories, containers)."""

    def secrets(self) -> list[str]:
        """The passwords the servers and the script use (to mask them in any output)."""

    def run(self, name: str, script: str, timeout: float) -> Ran:
        """Run ``script`` (bash) where and as whom the backend runs setup-standby.sh,
        within ``timeout`` seconds. ``name`` ("section-3", "listing") names the piece."""

    def launch(self, name: str, script: str) -> None:
        """Run ``script``, whose end ``exec``s the server, in the background; return once
        the server accepts connections (an error naming what it saw if it does not)."""

    def close(self) -> None: ...


class LocalSteps:
    """The local backend: a primary as always, the standby's pieces as its account."""

    def __init__(self, pg_bin: str | None, timeout: float) -> None:
        self.backend = LocalBackend(pg_bin, timeout=timeout)
        try:
            self.primary: LocalNode = self.backend.create_primary("primary")
            self.standby: LocalNode = self.backend.adopt(
                "standby", "standby", self.backend.reserve()
            )
            self.env = self.backend.standby_env(self.standby, self.primary.port)
        except BaseException:
            self.backend.close()
            raise

    def describe(self) -> str:
        return (
            f"{self.backend.describe()}; each section runs as `bash <file>` as "
            f"{self.backend.account.name!r} in {self.backend.scripts}"
        )

    def owned(self) -> list[str]:
        return [
            f"primary server 127.0.0.1:{self.primary.port} and standby server "
            f"127.0.0.1:{self.standby.port} (local processes)",
            f"directory {self.backend.root} (both data directories, logs, sections)",
        ]

    def secrets(self) -> list[str]:
        return [self.backend.superuser_password, self.backend.replication_password]

    def _file(self, name: str, script: str) -> Path:
        path = self.backend.scripts / f"{name}.sh"
        path.write_text(script)
        path.chmod(0o644)
        return path

    def run(self, name: str, script: str, timeout: float) -> Ran:
        path = self._file(name, script)
        try:
            done = subprocess.run(
                ["/bin/bash", str(path)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                cwd=self.backend.root,
                env=self.env,
                timeout=timeout,
                **self.backend.account.popen_kwargs(),
            )
            ran = Ran(done.returncode, done.stdout.decode(errors="replace"))
        except subprocess.TimeoutExpired as exc:
            ran = Ran(None, bytes(exc.output or b"").decode(errors="replace"))
        if name.startswith("section-"):  # the node's setup output, as for any standby
            with open(self.standby.setup_path, "a") as out:
                out.write(ran.output)
        return ran

    def launch(self, name: str, script: str) -> None:
        self.standby.start_via_script(self._file(name, script), self.env)

    def close(self) -> None:
        self.backend.close()


class DockerSteps:
    """The Docker backend: its primary, and a waiting container for the standby."""

    def __init__(self, image: str, timeout: float) -> None:
        from .docker import DockerBackend

        self.timeout = timeout
        self.backend: DockerBackend = DockerBackend(image, timeout=timeout)
        try:
            self.primary: DockerNode = self.backend.create_primary("primary")
            self.standby: DockerNode = self._waiting_standby()
        except BaseException:
            self.backend.close()
            raise

    def _waiting_standby(self) -> DockerNode:
        """The container create_standby makes, but for its main process: it waits, and
        the script's sections come one by one through ``docker exec``."""
        from .docker import PGDATA, STANDBY_ALIAS, DockerNode, copied

        backend = self.backend
        container = (
            backend.container_spec("standby", STANDBY_ALIAS)
            .with_copy_into_container(*copied(lab_file("setup-standby.sh"), "/setup-standby.sh"))
            # the values create_standby gives the script; cluster_name is the WAL
            # receiver's application_name, by which the primary knows the standby
            .with_env("PGSTANDBY_POLL_INTERVAL", "0.02")
            .with_env(
                "PGSTANDBY_START_COMMAND",
                shlex.join(backend.server_command("standby")),
            )
            .with_tmpfs_mount(PGDATA)
            .with_kwargs(labels=dict(backend.labels), entrypoint=["sleep", "infinity"])
        )
        creds = Credentials(password=backend.superuser_password)
        node = DockerNode(
            backend, "standby", "standby", STANDBY_ALIAS, container, creds, upstream=self.primary
        )
        return backend.start_node(node, wait=False)

    def describe(self) -> str:
        return (
            f"{self.backend.describe()}; each section runs as `docker exec` (root) in "
            f"{self.standby.container_name()}, as the image's entrypoint runs the script"
        )

    def owned(self) -> list[str]:
        names = ", ".join(str(n.container_name()) for n in (self.primary, self.standby))
        return [f"containers {names}", f"network pgstandby-{self.backend.cluster}"]

    def secrets(self) -> list[str]:
        return [self.backend.superuser_password, self.backend.replication_password]

    def run(self, name: str, script: str, timeout: float) -> Ran:
        # coreutils' timeout bounds the piece inside the container: an exec has no bound
        argv = ["timeout", f"{timeout:g}", "bash", "-c", script]
        code, out = self.standby.container.exec(argv)
        text = bytes(out).decode(errors="replace")
        return Ran(None if code == 124 else int(code), text)

    def launch(self, name: str, script: str) -> None:
        # detached, its output on the container's (so `docker logs` shows the server's)
        plumbing = f"echo $$ > {_PIDFILE}; exec >/proc/1/fd/1 2>&1\n"
        self.standby.wrapped.exec_run(["bash", "-c", plumbing + script], detach=True)
        wait_accepting(
            lambda: self.standby.dsn,
            what=f"the standby ({self.standby.container_name()}) to accept connections",
            timeout=self.timeout,
            log=self.standby.all_output,
            abort=self._server_gone,
        )

    def _server_gone(self) -> str | None:
        alive = f'[ ! -s {_PIDFILE} ] || kill -0 "$(cat {_PIDFILE})"'
        code, _ = self.standby.container.exec(["bash", "-c", alive])
        return None if code == 0 else "section 7's process (the server) exited"

    def close(self) -> None:
        self.backend.close()


def open_steps(backend: str, *, image: str, pg_bin: str | None, timeout: float) -> Steps:
    """The walkthrough's servers on ``backend`` ("local" or "docker")."""
    if backend == "docker":
        return DockerSteps(image, timeout)
    return LocalSteps(pg_bin, timeout)
