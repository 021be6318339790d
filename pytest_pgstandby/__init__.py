"""pytest-pgstandby: PostgreSQL primary/standby pairs built per the documented procedure."""

from __future__ import annotations

import pytest as _pytest

# Before the import below: pytest rewrites plain asserts only in modules not yet imported.
_pytest.register_assert_rewrite("pytest_pgstandby.assertions")

from .assertions import (  # noqa: E402
    ReplicationAssertionError,
    ReplicationLag,
    Server,
    assert_primary_conninfo,
    assert_read_only,
    assert_replication_lag,
    assert_standby_signal,
    assert_streaming,
    poll_query_until,
    wait_for_catchup,
)
from .cluster import Cluster, build_cluster, start_cluster  # noqa: E402
from .config import Settings  # noqa: E402
from .databases import ReplicatedDatabase  # noqa: E402
from .errors import (  # noqa: E402
    BaseBackupError,
    BinariesNotFoundError,
    ConfigurationError,
    DockerUnavailableError,
    FilesUnavailableError,
    ImageIncompleteError,
    ImageMissingError,
    NameClashError,
    NotOwnedError,
    PgStandbyError,
    PrimaryNotReadyError,
    ReplicationAuthError,
    ServerDownError,
    SetupFailedError,
    TooManyStandbysError,
    UnsafeDataDirError,
    UnsupportedError,
    UnsupportedVersionError,
    VersionMismatchError,
    WaitTimeoutError,
    WrongRoleError,
)
from .node import Backup, Node, ServerLike, as_node  # noqa: E402
from .snapshots import ClusterSnapshot, take_snapshot  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "Backup",
    "BaseBackupError",
    "BinariesNotFoundError",
    "Cluster",
    "ClusterSnapshot",
    "ConfigurationError",
    "DockerUnavailableError",
    "FilesUnavailableError",
    "ImageIncompleteError",
    "ImageMissingError",
    "NameClashError",
    "Node",
    "NotOwnedError",
    "PgStandbyError",
    "PrimaryNotReadyError",
    "ReplicatedDatabase",
    "ReplicationAssertionError",
    "ReplicationAuthError",
    "ReplicationLag",
    "Server",
    "ServerDownError",
    "ServerLike",
    "Settings",
    "SetupFailedError",
    "TooManyStandbysError",
    "UnsafeDataDirError",
    "UnsupportedError",
    "UnsupportedVersionError",
    "VersionMismatchError",
    "WaitTimeoutError",
    "WrongRoleError",
    "as_node",
    "assert_primary_conninfo",
    "assert_read_only",
    "assert_replication_lag",
    "assert_standby_signal",
    "assert_streaming",
    "build_cluster",
    "poll_query_until",
    "start_cluster",
    "take_snapshot",
    "wait_for_catchup",
]
