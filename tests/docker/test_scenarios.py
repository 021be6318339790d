"""The replication scenarios on the Docker backend (containers of the lab image)."""

from tests.scenarios import *  # noqa: F403
