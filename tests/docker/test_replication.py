"""The replication suite on the Docker backend (containers of the lab image)."""

from tests.replication_suite import *  # noqa: F403
