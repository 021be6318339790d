"""Choosing a backend: ``auto`` picks Docker when a daemon answers and the image is
present, else local; the reason is kept for the pytest header."""

from __future__ import annotations

from ..config import Settings
from .base import Backend


def docker_status(image: str) -> tuple[bool, str]:
    """Whether the Docker backend can run now, and why (or why not)."""
    from . import docker as docker_backend

    return docker_backend.availability(image)


def open_backend(settings: Settings) -> tuple[Backend, str]:
    if settings.backend == "docker":
        from .docker import DockerBackend

        return DockerBackend(settings.image, settings.timeout), "asked for docker"
    if settings.backend == "auto":
        usable, why = docker_status(settings.image)
        if usable:
            from .docker import DockerBackend

            return DockerBackend(settings.image, settings.timeout), f"auto: {why}"
        reason = f"auto: local, since {why}"
    else:
        reason = "asked for local"
    from .local import LocalBackend

    return LocalBackend(settings.pg_bin, settings.timeout), reason
