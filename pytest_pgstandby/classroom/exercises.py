"""``pgstandby lab exercise list | start N | reset``: break-and-fix exercises on the lab.

Each exercise is a directory of ``lab/exercises/``: ``exercise.toml`` (its title, the
lab variables of its variant, what ``lab doctor`` must name and which checks ``lab check``
fails), ``README.md`` (the student's text: a symptom, no answer), ``TEACHER.md`` (cause,
evidence, fix), an optional ``break.sh`` run once the lab is up, and ``fix.sh``, the
documented fix that the tests run. ``start N`` rebuilds the lab (``down -v``, ``up``)
with the variant, runs ``break.sh``, waits until the standby stops streaming, and prints
the student's text.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import PgStandbyError
from ..labfiles import lab_dir
from .labctl import WAITS, Lab

SYMPTOM_TIMEOUT = 60.0  # break.sh itself waits for its symptom in the standby's log


@dataclass(frozen=True)
class Exercise:
    number: int
    path: Path
    title: str
    doctor_step: str  # the first broken step `lab doctor` must name
    failing_checks: tuple[str, ...]  # exactly the checks `lab check` must fail
    up_waits_for: str = "streaming"
    environment: dict[str, str] = field(default_factory=dict)

    @property
    def slug(self) -> str:
        return self.path.name

    def script(self, name: str) -> Path | None:
        path = self.path / name
        return path if path.is_file() else None

    def student_text(self) -> str:
        return (self.path / "README.md").read_text()


def exercises_dir() -> Path:
    return lab_dir() / "exercises"


def load_all() -> list[Exercise]:
    """Every exercise, by number (the directory name's leading digits)."""
    found = []
    for toml in sorted(exercises_dir().glob("[0-9]*/exercise.toml")):
        meta: dict[str, Any] = tomllib.loads(toml.read_text())
        if meta.get("up_waits_for", "streaming") not in WAITS:
            raise PgStandbyError(f"{toml}: up_waits_for must be one of {', '.join(WAITS)}")
        found.append(
            Exercise(
                number=int(toml.parent.name.split("-", 1)[0]),
                path=toml.parent,
                title=meta["title"],
                doctor_step=meta["doctor_step"],
                failing_checks=tuple(meta["failing_checks"]),
                up_waits_for=meta.get("up_waits_for", "streaming"),
                environment={k: str(v) for k, v in meta.get("environment", {}).items()},
            )
        )
    return found


def get(number: int | None) -> Exercise:
    known = load_all()
    for exercise in known:
        if exercise.number == number:
            return exercise
    numbers = ", ".join(str(e.number) for e in known)
    raise PgStandbyError(
        f"there is no exercise {number}. Fix: pgstandby lab exercise start N with N one of "
        f"{numbers} (pgstandby lab exercise list shows them)."
    )


def run_script(lab: Lab, exercise: Exercise, name: str) -> None:
    """Run ``break.sh`` or ``fix.sh`` of ``exercise`` against ``lab``'s containers."""
    script = exercise.script(name)
    if script is None:
        return
    done = subprocess.run(["bash", str(script)], env=lab.env, capture_output=True, text=True)
    if done.returncode != 0:
        raise PgStandbyError(
            f"{exercise.slug}/{name} exited {done.returncode}: "
            f"{(done.stderr or done.stdout).strip()[-500:]}. Fix: pgstandby lab exercise reset, "
            f"then start the exercise again; `docker logs {lab.container('standby')}` shows "
            "the standby's side."
        )


def start(lab: Lab, exercise: Exercise, timeout: float, yes: bool = False) -> int:
    if not confirmed(lab, yes):
        print("nothing was changed.")
        return 1
    lab.down()  # the lab's own containers and volumes: every exercise starts from scratch
    code = lab.up(timeout, extra_env=exercise.environment, until=exercise.up_waits_for)
    if code != 0:
        return code
    run_script(lab, exercise, "break.sh")
    lab.wait(SYMPTOM_TIMEOUT, until="not streaming")
    print(f"\nexercise {exercise.number} is set up: {exercise.title}\n")
    print(exercise.student_text().rstrip())
    print(
        "\nDiagnose: pgstandby lab doctor   Grade: pgstandby lab check   "
        "Start over: pgstandby lab exercise reset"
    )
    return 0


def confirmed(lab: Lab, yes: bool) -> bool:
    """Starting an exercise removes the lab and its data (the volumes: a student's own
    tables): said first, and asked unless ``--yes``; without a terminal to ask on, refused
    with the fix."""
    warning = (
        f"this rebuilds the lab: {lab.container('primary')} and {lab.container('standby')} "
        "are removed with their volumes, and every table you made in them is lost."
    )
    if yes:
        print(warning)
        return True
    if not sys.stdin.isatty():
        raise PgStandbyError(
            f"{warning} Nothing was changed. Fix: add --yes to go ahead "
            "(pgstandby lab exercise start N --yes)."
        )
    answer = input(f"{warning}\nGo ahead? [y/N] ")
    return answer.strip().lower() in ("y", "yes")


def reset(lab: Lab, timeout: float) -> int:
    """The plain lab again (a variant's containers are replaced, its volumes removed)."""
    lab.down()
    code = lab.up(timeout)
    if code == 0:
        print(lab.streaming_line())
    return code


def listing() -> str:
    lines = [f"{e.number:>2}  {e.title}" for e in load_all()]
    lines.append("Start one: pgstandby lab exercise start N  (it rebuilds the lab: its data goes)")
    return "\n".join(lines)


def add_parser(verbs: Any) -> None:
    exercise = verbs.add_parser("exercise", help="break-and-fix exercises (lab/exercises/)")
    exercise.add_argument("verb", choices=("list", "start", "reset"))
    exercise.add_argument("number", nargs="?", type=int, help="the exercise, for start")
    exercise.add_argument("--image", help="image of both servers")
    exercise.add_argument(
        "--timeout", type=float, default=120.0, help="seconds to wait for the lab"
    )
    exercise.add_argument(
        "--yes", action="store_true", help="start without asking (the lab's data goes)"
    )


def command(lab: Lab, args: argparse.Namespace) -> int:
    if args.verb == "list":
        print(listing())
        return 0
    if args.verb == "reset":
        return reset(lab, args.timeout)
    if args.number is None:
        raise PgStandbyError(
            "which exercise? Fix: pgstandby lab exercise start N (pgstandby lab exercise "
            "list shows them)."
        )
    return start(lab, get(args.number), args.timeout, yes=args.yes)
