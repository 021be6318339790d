"""Choosing a backend: ``external`` when running servers are given by DSN; ``auto`` picks
Docker when a daemon answers and the image is present, else local. The reason is kept for
the pytest header."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from contextvars import ContextVar

from ..config import Settings
from .base import Backend
from .external import ExternalBackend, Server
from .local import LocalBackend

# backends.docker is imported only where Docker is asked for or probed: docker-py and
# testcontainers cost ~0.2 s to import, at every pytest start that loads the plugin.


def docker_status(image: str) -> tuple[bool, str]:
    """Whether the Docker backend can run now, and why (or why not)."""
    from . import docker as docker_backend

    return docker_backend.availability(image)


def engine_status(profile: str) -> str | None:
    """For the header: which daemon, how its servers are reached, the profile they run."""
    from . import containers

    return containers.engine_status(profile)


def external_backend(settings: Settings) -> ExternalBackend:
    """The servers named by ``primary_dsn`` / ``standby_dsn``, with their files' places."""
    assert settings.primary_dsn is not None
    primary = Server(settings.primary_dsn, settings.primary_data_dir, settings.primary_container)
    standbys = [
        Server(
            dsn,
            settings.standby_data_dir[i] if settings.standby_data_dir else None,
            settings.standby_container[i] if settings.standby_container else None,
        )
        for i, dsn in enumerate(settings.standby_dsn)
    ]
    return ExternalBackend(primary, standbys, settings.timeout)


def _hardened(settings: Settings) -> bool | None:
    """The profile asked; None for auto, which the Docker backend decides by where its
    daemon publishes (hardened wherever other machines reach the servers)."""
    return None if settings.profile == "auto" else settings.hardened


def open_backend(settings: Settings) -> tuple[Backend, str]:
    if settings.external:
        return external_backend(settings), "servers given by DSN"
    if settings.backend == "docker":
        from .docker import DockerBackend

        backend = DockerBackend.open(
            settings.docker_image, settings.timeout, _hardened(settings), settings.version
        )
        return backend, "asked for docker"
    if settings.backend == "auto":
        usable, why = docker_status(settings.docker_image)
        if usable:
            from .docker import DockerBackend

            backend = DockerBackend.open(
                settings.docker_image, settings.timeout, _hardened(settings), None
            )
            return backend, f"auto: {why}"
        reason = f"auto: local, since {why}"
    else:
        reason = "asked for local"
    return LocalBackend(
        settings.pg_bin, settings.timeout, hardened=settings.hardened, major=settings.version
    ), reason


#: Whether another cluster of the same settings will be asked for after the one being
#: built: a factory knows (a later test asks for its fixture); None, the Docker backend
#: guesses (from the second build of the same settings on).
_EXPECTED: ContextVar[bool | None] = ContextVar("pgstandby_expected", default=None)


@contextlib.contextmanager
def expecting(more: bool) -> Iterator[None]:
    """Around a build: whether a cluster of the same settings will be asked for next."""
    token = _EXPECTED.set(more)
    try:
        yield
    finally:
        _EXPECTED.reset(token)


def built(backend: Backend) -> None:
    """A cluster was built on ``backend``: Docker may begin the next one's warm kit."""
    after = getattr(backend, "built", None)
    if after is not None:
        after(_EXPECTED.get())


def drain_warm() -> None:
    """Remove the warm Docker kits not taken (if Docker was used at all)."""
    warm = sys.modules.get("pytest_pgstandby.backends.docker_warm")
    if warm is not None:
        warm.drain()
