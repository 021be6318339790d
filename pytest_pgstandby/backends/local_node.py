"""A local node: one PostgreSQL server process of a LocalBackend session, and what it
asks of that backend (local.py imports this module, so the class itself is not named
here, as docker_node.py does for the Docker backend)."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from ..binaries import Binaries
from ..errors import SetupFailedError, UnsupportedError, WaitTimeoutError
from .accounts import Account, run_as
from .base import (
    RELAY,
    STOP_SIGNALS,
    Credentials,
    NodeHandle,
    OwnedHandle,
    PeerAddress,
    Reach,
    Role,
    StopMode,
    dsn_address,
    reach_here,
    wait_accepting,
)
from .sessions import record_process, with_descendants
from .values import server_settings

log = logging.getLogger(__name__)


class ProcessBackend(Protocol):
    """What a node asks of the LocalBackend that made it."""

    root: Path
    socket_dir: Path
    scripts: Path
    account: Account
    bins: Binaries
    timeout: float

    def env(self, **extra: str) -> dict[str, str]: ...
    def dsn_for(self, node: LocalNode) -> str: ...
    def socket_dsn(self, node: LocalNode) -> str: ...
    def shared_dir(self) -> Path: ...


@dataclass(repr=False)  # OwnedHandle's: no password of its environment
class LocalNode(OwnedHandle):
    """One PostgreSQL server process of the local backend."""

    backend: ProcessBackend  # the LocalBackend that made it
    name: str
    role: Role
    port: int
    data_dir: str
    host: str = "127.0.0.1"
    credentials: Credentials = field(default_factory=Credentials)
    proc: subprocess.Popen[bytes] | None = None
    relay: subprocess.Popen[bytes] | None = None
    relay_port: str = ""
    script_env: dict[str, str] = field(default_factory=dict)  # how setup-standby.sh ran
    slot: str | None = None  # the upstream's slot it streams through (command line)

    @property
    def dsn(self) -> str:
        return self.backend.dsn_for(self)

    def container_name(self) -> str | None:
        return None

    def file_location(self, relpath: str = "") -> str:
        return os.path.join(self.data_dir, relpath) if relpath else self.data_dir

    def peer_address(self, peer: NodeHandle) -> PeerAddress:
        return dsn_address(self.dsn, self.role)

    @property
    def log_path(self) -> Path:
        return self.backend.root / f"{self.name}.log"

    @property
    def setup_path(self) -> Path:
        return self.backend.root / f"{self.name}-setup.out"

    def server_command(self) -> list[str]:
        return [
            self.backend.bins.path("postgres"),
            "-D", self.data_dir,
            "-p", str(self.port),
            "-c", "listen_addresses=127.0.0.1",
            "-c", f"unix_socket_directories={self.backend.socket_dir}",
            *server_settings(self.name, self.slot),
        ]  # fmt: skip

    def _launch(self, argv: list[str], output: Path, env: dict[str, str]) -> None:
        with open(output, "ab") as out:
            self.proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.backend.root,
                env=env,
                start_new_session=True,  # Ctrl-C in pytest must not reach the servers first
                **self.backend.account.popen_kwargs(),
            )
        record_process(self.backend.root, self.proc.pid)

    def start(self) -> None:
        self.launch()
        self.wait_ready()

    def launch(self) -> None:
        """Start the server on its data and return at once (``wait_ready`` waits)."""
        if not self.is_running():
            self._launch(self.server_command(), self.log_path, self.backend.env())

    def start_via_script(self, script: Path, env: dict[str, str]) -> None:
        self.script_env = env
        self._launch(["/bin/bash", str(script)], self.setup_path, env)
        self.wait_ready()

    def reclone(self) -> None:
        """Stop the standby and run setup-standby.sh on it again, as the first time: it
        empties the data directory and takes a new base backup."""
        if self.role != "standby" or not self.script_env:
            raise UnsupportedError(f"reclone() rebuilds a standby; {self.name} is the primary")
        self.stop_escalating()
        self.start_via_script(self.backend.scripts / "setup-standby.sh", self.script_env)

    def wait_ready(self, timeout: float | None = None) -> None:
        def exited() -> str | None:
            if self.proc is not None and self.proc.poll() is not None:
                return f"process exited with status {self.proc.returncode}"
            return None

        wait_accepting(
            lambda: self.backend.socket_dsn(self),
            what=f"{self.name} to accept connections on 127.0.0.1:{self.port}",
            timeout=timeout or self.backend.timeout,
            log=self.log_and_setup,
            abort=exited,
        )

    def is_running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, mode: StopMode = "fast", timeout: float = 60.0) -> None:
        if not self.is_running():
            return
        assert self.proc is not None
        self.proc.send_signal(STOP_SIGNALS[mode])
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise WaitTimeoutError(
                f"{self.name} did not stop within {timeout:g}s after a {mode} shutdown "
                f"(pid {self.proc.pid})."
            ) from None

    def stop_escalating(self, patience: float = 3.0) -> None:
        """Fast shutdown, then SIGKILL if it is held up (a backend forked for a client that
        connected while the server was frozen can sit out authentication_timeout)."""
        if self.is_running():
            self.resume()  # a paused server cannot stop
        try:
            self.stop("fast", timeout=patience)
        except WaitTimeoutError:
            log.warning("%s ignored a fast shutdown for %gs; killing it", self.name, patience)
            self.kill()

    def kill(self) -> None:
        """SIGKILL the postmaster, as a crash would. Its backends exit on their own."""
        if self.is_running():
            assert self.proc is not None
            self.proc.kill()
            self.proc.wait()

    def pause(self) -> None:
        """SIGSTOP to the postmaster first (so that it forks nothing new), then to every
        process working in the data directory: PostgreSQL's children each call setsid(),
        so no process group holds them all, but each chdirs into the data directory."""
        self._signal_all(signal.SIGSTOP)

    def resume(self) -> None:
        self._signal_all(signal.SIGCONT)

    def _signal_all(self, sig: signal.Signals) -> None:
        """The postmaster, then its processes (each one of the servers' account)."""
        if not self.is_running():
            raise SetupFailedError(f"{self.name} is not running; start() it first")
        assert self.proc is not None
        for pid in with_descendants([self.proc.pid], {self.backend.account.uid}):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)

    def open_relay(self, host: str, port: str) -> tuple[str, str]:
        """The relay runs on this machine, in the session directory (so that teardown and
        the sweep of a dead session find it like the servers)."""
        if self.relay is None:
            self.relay, self.relay_port = start_relay(self.backend.root, host, port, self.name)
        return "127.0.0.1", self.relay_port

    def cut_relay(self) -> None:
        assert self.relay is not None, "open_relay() first"
        self.relay.send_signal(signal.SIGSTOP)

    def mend_relay(self) -> None:
        if self.relay is not None:
            self.relay.send_signal(signal.SIGCONT)

    def _path(self, relpath: str) -> Path:
        base = Path(self.data_dir).resolve()
        path = (base / relpath).resolve()
        if path != base and base not in path.parents:
            raise ValueError(f"{relpath!r} is outside the data directory of {self.name}")
        return path

    def read_file(self, relpath: str) -> str:
        return self._path(relpath).read_text()

    def exists(self, relpath: str) -> bool:
        return self._path(relpath).exists()

    def write_file(self, relpath: str, text: str, append: bool = False) -> None:
        flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | (os.O_APPEND if append else os.O_TRUNC)
        path = self._path(relpath)
        with os.fdopen(os.open(path, flags, 0o600), "a" if append else "w") as out:
            out.write(text)
        self.backend.account.chown(path)

    def run(
        self, argv: list[str], env: dict[str, str] | None = None, timeout: float | None = None
    ) -> str:
        values = {"PGPORT": str(self.port), "PGUSER": self.credentials.user, **(env or {})}
        return run_as(
            argv,
            self.backend.account,
            self.backend.env(**values),
            timeout or self.backend.timeout,
            cwd=self.data_dir,
        )

    @property
    def shared_dir(self) -> str:
        return str(self.backend.shared_dir())

    def reach(self, host: str, port: int) -> Reach:
        return reach_here(host, port)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def setup_output(self) -> str:
        if not self.setup_path.exists():
            return ""
        return self.setup_path.read_text(errors="replace")

    def log_and_setup(self) -> str:
        return self.setup_output() + self.log()


def start_relay(root: Path, host: str, port: str, who: str) -> tuple[subprocess.Popen[bytes], str]:
    """relay.pl towards ``host:port`` on a free port of this machine, working in ``root``
    (so that teardown and the sweep of a dead session find it like the servers)."""
    perl = shutil.which("perl")
    if perl is None:
        raise UnsupportedError(
            f"partition() of {who} is not supported by the local backend here: its relay "
            "is a perl script and no perl is on PATH. Fix: install perl (Debian: "
            "perl-base), or use the docker backend."
        )
    relay = subprocess.Popen(
        [perl, str(RELAY), "0", host, port],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        cwd=root,
        start_new_session=True,
    )
    assert relay.stdout is not None
    record_process(root, relay.pid)
    line = relay.stdout.readline().decode().split()  # printed once it listens
    if len(line) != 2:
        relay.kill()
        raise SetupFailedError(f"the relay of {who} did not start: {line}")
    return relay, line[0]
