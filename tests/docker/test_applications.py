"""Applications against a replica on the Docker backend (containers of the lab image)."""

from tests.applications import *  # noqa: F403
