"""The recovery-depth verbs on the Docker backend (containers of the lab image)."""

from tests.recovery import *  # noqa: F403
