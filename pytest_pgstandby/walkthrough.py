"""``pgstandby lab walkthrough``: the documented procedure one section at a time, each
section's effect proved live.

(Being written: see the helper's report.)"""

from __future__ import annotations


def run(*, backend: str, yes: bool, image: str | None) -> int:
    raise NotImplementedError
