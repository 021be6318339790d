"""The replication scenarios on the local backend (servers from local binaries)."""

from tests.scenarios import *  # noqa: F403
