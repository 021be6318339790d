"""Ports on 127.0.0.1 for local servers: one the kernel has free now, and a reservation
of it that holds across the test processes of this account until released."""

from __future__ import annotations

import contextlib
import os
import socket
from pathlib import Path

from .owners import owner_alive, owner_stamp

PORT_MARK = ".pgstandby-port-"


def free_port() -> int:
    """A port the kernel has free on 127.0.0.1 now (another process may take it next)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def reserve_port(base: Path, attempts: int = 50) -> tuple[int, Path]:
    """A free port and a reservation of it that holds across processes (pytest-xdist
    workers) until released: ``<base>/.pgstandby-port-<n>`` made with O_EXCL, holding
    the owner's pid. A reservation whose owner is dead is reclaimed. Between this and
    the server's bind, no other session of this machine takes the port."""
    for _ in range(attempts):
        port = free_port()
        mark = base / f"{PORT_MARK}{port}"
        try:
            fd = os.open(mark, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            with contextlib.suppress(OSError, ValueError):
                if not owner_alive(mark.read_text()):
                    mark.unlink()  # its owner died: free again (next attempt may take it)
            continue
        with os.fdopen(fd, "w") as out:
            out.write(owner_stamp())
        return port, mark
    raise OSError(f"no port could be reserved in {base} after {attempts} attempts")
