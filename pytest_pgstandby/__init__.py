"""pytest-pgstandby: PostgreSQL primary/standby pairs built per the documented procedure."""

from __future__ import annotations

from .cluster import Cluster, Node, build_cluster, start_cluster
from .config import Settings
from .errors import (
    BinariesNotFoundError,
    ConfigurationError,
    DockerUnavailableError,
    ImageMissingError,
    NameClashError,
    PgStandbyError,
    SetupFailedError,
    UnsafeDataDirError,
    WaitTimeoutError,
)

__version__ = "0.1.0"

__all__ = [
    "BinariesNotFoundError",
    "Cluster",
    "ConfigurationError",
    "DockerUnavailableError",
    "ImageMissingError",
    "NameClashError",
    "Node",
    "PgStandbyError",
    "Settings",
    "SetupFailedError",
    "UnsafeDataDirError",
    "WaitTimeoutError",
    "build_cluster",
    "start_cluster",
]
