"""Applications against a replica on the local backend (servers from local binaries)."""

from tests.applications import *  # noqa: F403
