"""The replication suite on the local backend (servers from local binaries)."""

from tests.replication_suite import *  # noqa: F403
