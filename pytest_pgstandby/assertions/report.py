"""How a check reports: problems, observations and fixes collected into one message,
every secret masked, raised once as a ReplicationAssertionError."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from .._text import MASK, mask_secrets

log = logging.getLogger(__name__)

MIN_SECRET_LEN = 4  # shorter passwords are masked in conninfo form only, not as bare words


def _distinctive(secret: str) -> bool:
    """Whether a password may also be masked where it stands as a bare word. A plain word
    such as the lab's ``postgres`` is also a user, a database and part of host names;
    masking it everywhere would garble the message, so it is masked as ``password=``
    values only (mask_secrets)."""
    return len(secret) >= MIN_SECRET_LEN and not secret.isalpha()


class ReplicationAssertionError(AssertionError):
    """A replication check failed. ``problems`` holds one line per failed condition; the
    message adds what was observed and a fix. Passwords are masked."""

    def __init__(self, message: str, problems: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.problems = list(problems)


class Report:
    """Collects problems and observations of one check; raises one masked error."""

    def __init__(self, check: str, subject: str) -> None:
        self.check = check
        self.subject = subject
        self.problems: list[str] = []
        self.observed: list[str] = []
        self.fixes: list[str] = []
        self.secrets: set[str] = set()

    def problem(self, text: str) -> None:
        self.problems.append(text)

    def see(self, text: str) -> None:
        self.observed.append(text)

    def fix(self, text: str) -> None:
        if text not in self.fixes:
            self.fixes.append(text)

    def scrub(self, text: str) -> str:
        text = mask_secrets(text)
        for secret in sorted(self.secrets, key=len, reverse=True):
            if _distinctive(secret):
                text = text.replace(secret, MASK)
        return text

    def render(self) -> str:
        n = len(self.problems)
        lines = [f"{self.check} failed for {self.subject}: {n} problem{'s' * (n != 1)}"]
        lines += [f"  - {p}" for p in self.problems]
        if self.observed:
            lines.append("  observed:")
            lines += [f"    {o}" for o in self.observed]
        lines += [f"  fix: {f}" for f in self.fixes]
        return self.scrub("\n".join(lines))

    def raise_if_problems(self) -> None:
        __tracebackhide__ = True
        if self.problems:
            raise ReplicationAssertionError(self.render(), [self.scrub(p) for p in self.problems])
        log.debug("%s passed for %s", self.check, self.scrub(self.subject))


def error_text(exc: BaseException) -> str:
    """One line for a database or OS error: SQLSTATE (if any) and the first message line."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    state = getattr(exc, "sqlstate", None)
    return f"{text} (SQLSTATE {state})" if state else text
