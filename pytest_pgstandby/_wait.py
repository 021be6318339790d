"""Bounded polling. Every wait says what it awaited, what it last saw, and the log tail."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import TypeVar

from ._text import mask_secrets, tail
from .errors import ConfigurationError, ServerDownError, SetupFailedError, WaitTimeoutError

T = TypeVar("T")

#: The longest a single connection attempt may take, whatever the wait around it.
MAX_CONNECT_TIMEOUT = 10


def connect_budget(bound: float) -> int:
    """The libpq ``connect_timeout`` for a connection made within a wait of ``bound``
    seconds: whole seconds (libpq's unit), at least 2 (libpq's minimum), at most 10, so
    that a frozen server costs one attempt, not the whole wait."""
    return max(2, min(MAX_CONNECT_TIMEOUT, math.ceil(bound)))


class NotYet(Exception):
    """Raised by a check to say "not yet" and what it saw (shown as the last state)."""


def poll_until(
    check: Callable[[], T],
    *,
    what: str,
    timeout: float,
    interval: float = 0.05,
    log: Callable[[], str] | None = None,
    abort: Callable[[], str | None] | None = None,
    abort_every: float = 0.0,
) -> T:
    """Call ``check`` until it returns a truthy value, or raise after ``timeout`` seconds.

    An exception from ``check`` counts as "not yet" and is remembered as the last state.
    ``abort`` may return a reason to stop early (a process exited, say); it is asked after
    every "not yet", or at most every ``abort_every`` seconds where asking costs (a Docker
    container's state is an API call), and always before a timeout. The pause between
    calls starts at 1 ms and doubles up to ``interval``: what is nearly there (a row's
    replay takes a millisecond or two) is seen at once, what takes long is not hammered.
    """
    deadline = time.monotonic() + timeout
    last: str = "nothing observed yet"
    pause = min(0.001, interval)
    asked = -abort_every  # when abort() was last asked
    while True:
        try:
            result = check()
            if result:
                return result
            last = repr(result)
        except NotYet as exc:
            last = str(exc)
        except (ConfigurationError, ServerDownError):
            raise  # waiting cannot change it: a wrong role or direction, a server gone
        except Exception as exc:
            last = f"{type(exc).__name__}: {str(exc).strip()}"
        reason = None
        now = time.monotonic()
        expired = now >= deadline
        if abort is not None and (expired or now - asked >= abort_every):
            asked = now
            reason = abort()
        if reason:
            raise SetupFailedError(_message(f"gave up waiting for {what}: {reason}", last, log))
        if expired:
            raise WaitTimeoutError(
                _message(f"timed out after {timeout:g}s waiting for {what}", last, log)
            )
        time.sleep(pause)
        pause = min(pause * 2, interval)


def _message(head: str, last: str, log: Callable[[], str] | None) -> str:
    text = f"{head}\n  last observed: {mask_secrets(last)}"
    if log is not None:
        try:
            logged = log()
        except OSError as exc:
            return text + f"\n  (log unreadable: {exc})"
        if logged.strip():
            text += "\n  log tail:\n" + tail(logged)
    return text
