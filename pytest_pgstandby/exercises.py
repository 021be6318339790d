"""``pgstandby lab exercise list | start N | reset``: break-and-fix exercises on the lab."""

from __future__ import annotations

import argparse
from typing import Any

from .labctl import Lab


def add_parser(verbs: Any) -> None:
    exercise = verbs.add_parser("exercise", help="break-and-fix exercises (lab/exercises/)")
    exercise.add_argument("verb", choices=("list", "start", "reset"))
    exercise.add_argument("number", nargs="?", type=int)


def command(lab: Lab, args: argparse.Namespace) -> int:
    raise NotImplementedError
