"""The break-and-fix exercises of lab/exercises/, as a class runs them: `pgstandby lab
exercise start N` on a compose lab (a project, names and ports of the test's own), then
`lab doctor` must name the exercise's root cause, `lab check` must fail exactly the
exercise's checks, and after the documented fix (its fix.sh) `lab check` passes 5/5."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import pytest

from pytest_pgstandby.classroom import exercises
from pytest_pgstandby.classroom.labctl import Lab
from tests.docker.compose import ComposeLab, own_lab

pytestmark = pytest.mark.docker

EXERCISES = exercises.load_all()


@pytest.fixture(scope="module")
def lab(lab_image: str) -> Iterator[ComposeLab]:
    with own_lab("pgstandby-ex") as made:
        yield made


def pgstandby(
    lab: ComposeLab, *args: str, timeout: float = 240
) -> subprocess.CompletedProcess[str]:
    return lab.pgstandby(*args, timeout=timeout)


def failed_checks(output: str) -> set[str]:
    return {line[6:].strip() for line in output.splitlines() if line.startswith("FAIL  ")}


def test_there_are_six_exercises_each_with_student_and_teacher_text() -> None:
    assert [e.number for e in EXERCISES] == [1, 2, 3, 4, 5, 6]
    for exercise in EXERCISES:
        student = exercise.student_text()
        teacher = (exercise.path / "TEACHER.md").read_text()
        assert exercise.script("fix.sh") is not None, exercise.slug
        # the student's text shows the symptom, never the answer
        assert exercise.doctor_step not in student, exercise.slug
        assert "Fix**" in teacher and exercise.doctor_step in teacher, exercise.slug


@pytest.mark.parametrize("exercise", EXERCISES, ids=[e.slug for e in EXERCISES])
def test_exercise_is_diagnosed_graded_and_fixed(
    lab: ComposeLab, exercise: exercises.Exercise
) -> None:
    started = pgstandby(lab, "exercise", "start", str(exercise.number), "--yes")
    assert started.returncode == 0, started.stdout + started.stderr
    assert exercise.student_text().splitlines()[0] in started.stdout
    assert "this rebuilds the lab" in started.stdout and "every table you made" in started.stdout

    doctor = pgstandby(lab, "doctor")
    assert doctor.returncode == 1, doctor.stdout + doctor.stderr
    assert doctor.stdout.splitlines()[-1] == f"first broken step: {exercise.doctor_step}", (
        doctor.stdout
    )

    graded = pgstandby(lab, "check")
    assert graded.returncode == 1, graded.stdout + graded.stderr
    assert failed_checks(graded.stdout) == set(exercise.failing_checks), graded.stdout

    exercises.run_script(Lab(lab.env), exercise, "fix.sh")
    # the standby reconnects (or is cloned again) by itself: --wait, as the fixes say
    fixed = pgstandby(lab, "check", "--wait", "120")
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert fixed.stdout.splitlines()[-1] == "5 passed, 0 failed"
    healthy = pgstandby(lab, "doctor")
    assert healthy.returncode == 0, healthy.stdout


def test_reset_brings_back_the_plain_lab(lab: ComposeLab) -> None:
    first = EXERCISES[0]  # a variant of the lab's variables, not only a break
    assert pgstandby(lab, "exercise", "start", str(first.number), "--yes").returncode == 0
    reset = pgstandby(lab, "exercise", "reset")
    assert reset.returncode == 0, reset.stdout + reset.stderr
    assert "lab pair is streaming" in reset.stdout
    graded = pgstandby(lab, "check")
    assert graded.stdout.splitlines()[-1] == "5 passed, 0 failed", graded.stdout


def test_starting_an_exercise_without_yes_and_without_a_terminal_changes_nothing(
    lab: ComposeLab,
) -> None:
    """Issue 20 #11: `start` removed the lab's volumes (a student's tables) without a
    word. Without --yes and no terminal to ask on, it refuses and the lab's data stays."""
    up = pgstandby(lab, "up")
    assert up.returncode == 0, up.stdout + up.stderr
    with lab.connect(lab.primary_port) as conn:
        conn.execute("CREATE TABLE students_work AS SELECT 42 AS answer")
        conn.commit()
    refused = pgstandby(lab, "exercise", "start", "1")
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "every table you made in them is lost. Nothing was changed. Fix: add --yes" in (
        refused.stderr
    )
    with lab.connect(lab.primary_port) as conn:
        assert conn.execute("SELECT answer FROM students_work").fetchone() == (42,)


def test_an_unknown_exercise_is_one_clear_line(lab: ComposeLab) -> None:
    result = pgstandby(lab, "exercise", "start", "99", "--yes")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "pgstandby: error: there is no exercise 99. Fix: pgstandby lab exercise start N with "
        "N one of 1, 2, 3, 4, 5, 6 (pgstandby lab exercise list shows them)."
    ]
