"""Places a node can live. Each backend starts processes or containers and reads their files;
none knows about pytest, and none re-implements the lab scripts."""

from __future__ import annotations

from .base import Backend, NodeHandle, StopMode

__all__ = ["Backend", "NodeHandle", "StopMode"]
