"""The recovery-depth verbs on the local backend (servers from local binaries)."""

from tests.recovery import *  # noqa: F403
