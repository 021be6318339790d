"""``pgstandby lab walkthrough``: the documented procedure one section at a time, each
section's effect proved live.

``lab/setup-standby.sh`` follows the seed step by step, one ``# Section N:`` comment per
step. Against a fresh primary, each section runs in a fresh ``bash`` with the script's
header (which reads every value from the environment the backend gives the script): its
lines are printed first, then what it printed, then the proofs of its effect
(``proofs.py``), each PASS or FAIL with what it saw. Section 7 ``exec``s the server, so
it runs in the background; two proofs wait for it (section 4's sourcefile, section 6's
matching line). Whatever the end (all passed, a failure, Ctrl-C, an error), everything
made is removed; the exit status is 1 if any proof failed.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from .._text import MASK, mask_secrets
from ..backends.stepwise import Ran, Steps, open_steps
from ..config import from_sources
from ..errors import PgStandbyError
from ..labfiles import lab_file
from ..node import Node
from . import proofs as p
from .labctl import LAB_IMAGE_DEFAULT

SCRIPT = "setup-standby.sh"
_MARK = re.compile(r"^# Section (\d+): (.+)$")
SECTIONS = 7
DOTFILE = ".walkthrough-dotfile"
#: bash, after the header: what an earlier run could have left in the data directory
#: (the seed's step 2 exists for a restarted container), and a dotfile.
LEFTOVERS = f"""mkdir -p -m 0700 "$DATA_DIR"
cd "$DATA_DIR"
echo 15 > PG_VERSION
mkdir -p base/1 && echo 'left by an earlier run' > base/1/1259
echo '/usr/lib/postgresql/15/bin/postgres' > postmaster.opts
echo 'a dotfile' > {DOTFILE}"""


#: bash, after the header: each value it set (a password only as set or empty)
_SHOW_VALUES = """for v in {names}; do
    case "$v" in
        *PASSWORD*) if [ -n "${{!v}}" ]; then echo "  $v={mask}"; else echo "  $v=(empty)"; fi ;;
        *) echo "  $v=${{!v}}" ;;
    esac
done"""


@dataclass(frozen=True)
class Section:
    """One ``# Section N:`` of the script: its lines and where they stand (1-based)."""

    number: int
    title: str
    first: int
    lines: tuple[str, ...]

    @property
    def last(self) -> int:
        return self.first + len(self.lines) - 1

    @property
    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def split_script(text: str) -> tuple[str, list[Section]]:
    """The header (what comes before ``# Section 1:``) and the seven sections."""
    lines = text.splitlines()
    marks = [(i, m) for i, line in enumerate(lines) if (m := _MARK.match(line))]
    numbers = [int(m.group(1)) for _, m in marks]
    if numbers != list(range(1, SECTIONS + 1)):
        raise PgStandbyError(
            f"lab/{SCRIPT} has the section comments {numbers or 'none'}; the walkthrough "
            f"needs '# Section 1:' to '# Section {SECTIONS}:' in order, one before each "
            f"step of the seed. Fix: restore those comments in lab/{SCRIPT}."
        )
    sections = []
    for k, (start, mark) in enumerate(marks):
        end = marks[k + 1][0] if k + 1 < len(marks) else len(lines)
        body = lines[start:end]
        while body and not body[-1].strip():
            body.pop()
        sections.append(Section(int(mark.group(1)), mark.group(2), start + 1, tuple(body)))
    return "\n".join(lines[: marks[0][0]]) + "\n", sections


def squeeze(output: str) -> list[str]:
    """The lines of a command's output, a repeated line or pair of lines (a wait loop's)
    shown once with a count; progress redraws (\\r) become lines."""
    lines = [part.rstrip() for line in output.splitlines() for part in line.split("\r")]
    lines = [line for line in lines if line.strip()]
    out: list[str] = []
    i = 0
    while i < len(lines):
        for width in (1, 2):
            block = lines[i : i + width]
            repeats = 1
            while lines[i + repeats * width : i + (repeats + 1) * width] == block:
                repeats += 1
            if len(block) == width and repeats > 2:
                out += [*block, f"... the same {width} line(s) {repeats - 1} more times"]
                i += repeats * width
                break
        else:
            out.append(lines[i])
            i += 1
    return out


@dataclass
class Walkthrough:
    """The sections, run and proved one by one on ``steps``' servers."""

    steps: Steps
    header: str
    sections: list[Section]
    yes: bool
    timeout: float
    secrets: list[str]
    proved: dict[int, list[p.Proof]] = field(default_factory=dict)
    timings: dict[int, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.primary = Node(self.steps.primary, self.timeout)
        self.standby = Node(self.steps.standby, self.timeout)
        self.header_lines = self.header.rstrip("\n").count("\n") + 1

    # output ---------------------------------------------------------------------------
    def say(self, text: str = "", literal: bool = False) -> None:
        """Print ``text`` with every password masked; ``literal`` text (the script's own
        lines: ``PGPASSWORD=$POSTGRES_REPLICATION_PASSWORD`` names a variable) is
        printed as it is, but for a password's value."""
        if not literal:
            text = mask_secrets(text)
        for secret in self.secrets:
            if len(secret) >= 4 and not secret.isalpha():
                text = text.replace(secret, MASK)
        print(text, flush=True)

    def record(self, number: int, proof: p.Proof, note: str = "") -> None:
        self.proved.setdefault(number, []).append(proof)
        lines = proof.lines()
        if note:
            lines[0] += f"  [{note}]"
        for line in lines:
            self.say("  " + line)

    def probe(self, name: str, body: str) -> Ran:
        """A command in the standby's place, after the script's header (for its values)."""
        return self.steps.run(name, self.header + body + "\n", self.timeout)

    def listing(self) -> list[p.Entry]:
        ran = self.probe("listing", p.LISTING)
        if ran.status != 0:
            raise PgStandbyError(f"listing the data directory failed: {ran.output.strip()}")
        return p.parse_listing(ran.output)

    # the walk -------------------------------------------------------------------------
    def through(self) -> int:
        """Every section in turn; the number of failed proofs (a failed section's
        commands count as one, and end the walk)."""
        self.say(f"backend: {self.steps.describe()}")
        for item in self.steps.owned():
            self.say(f"made for this walkthrough: {item}")
        self.say(
            f"\nThe header of lab/{SCRIPT} (lines 1-{self.header_lines}) sets the values "
            "every section reads; with this backend's environment they are:"
        )
        names = " ".join(re.findall(r"^([A-Z_][A-Z0-9_]*)=", self.header, flags=re.M))
        values = self.probe("values", _SHOW_VALUES.format(names=names, mask=MASK))
        self.say(values.output.rstrip())
        started = time.monotonic()
        for section in self.sections:
            if not self.section(section):
                self.say(f"\nSection {section.number} failed: the sections after it are not run.")
                break
        self.summary(time.monotonic() - started)
        return sum(not proof.passed for proofs in self.proved.values() for proof in proofs)

    def section(self, section: Section) -> bool:
        n = section.number
        self.say(f"\n=== Section {n} of {SECTIONS}: {section.title} ===")
        self.say(f"lab/{SCRIPT}, lines {section.first}-{section.last}:")
        for number, line in enumerate(section.lines, start=section.first):
            self.say(f"  {number:3} | {line}", literal=True)
        before = self.before(n)
        self.wait_for_enter(n)
        started = time.monotonic()
        ok = self.launch(section) if n == SECTIONS else self.execute(section)
        self.timings[n] = time.monotonic() - started
        if ok:
            self.say(f"-- proofs (section {n} ran in {self.timings[n]:.2f} s)")
            self.prove(n, before)
        return ok

    def wait_for_enter(self, n: int) -> None:
        if self.yes:
            return
        try:
            input(f"Press Enter to run section {n} (Ctrl-C stops and removes everything) ")
        except EOFError:
            self.say("(no more input: going on without waiting, as with --yes)")
            self.yes = True

    def execute(self, section: Section) -> bool:
        ran = self.steps.run(f"section-{section.number}", self.header + section.text, self.timeout)
        self.say(f"-- output (bash: the header + section {section.number}):")
        for line in squeeze(ran.output) or ["(nothing)"]:
            self.say(f"  > {line}")
        if ran.status == 0:
            return True
        if ran.status is None:
            seen = f"did not finish within {self.timeout:g} s"
        else:
            seen = f"exited with status {ran.status}"
        self.record(
            section.number,
            p.Proof(False, f"section {section.number}'s commands succeed", [f"they {seen}"]),
        )
        return False

    def launch(self, section: Section) -> bool:
        self.say(
            "-- started in the background (its `exec` turns bash into the server); "
            "waiting until it accepts connections"
        )
        try:
            self.steps.launch(f"section-{section.number}", self.header + section.text)
        except PgStandbyError as exc:
            self.record(
                section.number, p.Proof(False, "the standby server starts", str(exc).splitlines())
            )
            return False
        shown = [
            line
            for line in self.standby.log().splitlines()
            if re.search(r"standby mode|streaming WAL|ready to accept|redo starts", line)
        ]
        for line in shown or ["(its log says nothing yet)"]:
            self.say(f"  log> {line}")
        return True

    # what each section is proved by -----------------------------------------------------
    def before(self, n: int) -> list[p.Entry]:
        if n == 2:
            self.say(
                f"Before it, the walkthrough leaves what an earlier run would have left in "
                f"$DATA_DIR (the reason for this step), and a dotfile, {DOTFILE}:"
            )
            made = self.probe("leftovers", LEFTOVERS)
            if made.status != 0:
                raise PgStandbyError(f"could not prepare the data directory: {made.output}")
            entries = self.listing()
            self.say(f"  {p.names(entries)}")
            return entries
        if n == 3:
            removed = self.probe("remove-dotfile", f'rm -f "$DATA_DIR/{DOTFILE}"')
            if removed.status != 0:
                raise PgStandbyError(f"could not remove {DOTFILE}: {removed.output.strip()}")
            self.say(
                f"Before it, the walkthrough removes {DOTFILE}, which section 2 left: "
                'pg_basebackup refuses a directory that is not empty ("directory exists '
                'but is not empty"), so a real leftover dotfile would stop the procedure '
                "here."
            )
        return []

    def prove(self, n: int, before: list[p.Entry]) -> None:
        checks: dict[int, list[tuple[str, Callable[[], p.Proof]]]] = {
            1: [("the primary answers pg_isready", self.prove_ready)],
            2: [
                (
                    "rm -rf emptied the data directory",
                    lambda: p.prove_emptied(before, self.listing(), DOTFILE),
                )
            ],
            3: [
                ("pg_basebackup -R wrote its files", lambda: p.prove_recovery_files(self.standby)),
                ("the primary's files were copied", lambda: p.prove_copied(self.listing())),
            ],
            4: [("primary_conninfo was appended", lambda: p.prove_appended_conninfo(self.standby))],
            5: [("standby.signal exists", lambda: p.prove_standby_signal(self.standby))],
            6: [("section 6's lines were appended", lambda: p.prove_hba_appended(self.standby))],
            7: [
                ("the standby runs in recovery", lambda: p.prove_in_recovery(self.standby)),
                ("its WAL receiver streams", lambda: p.prove_streaming(self.standby, self.timeout)),
                (
                    "a row is replayed",
                    lambda: p.prove_replayed(self.primary, self.standby, self.timeout),
                ),
                ("a write is refused", lambda: p.prove_write_refused(self.standby)),
            ],
        }
        for what, check in checks[n]:
            self.record(n, p.attempt(what, check))
        if n == SECTIONS:
            self.say("-- proofs that needed the running server")
            late = [
                (
                    4,
                    "primary_conninfo comes from postgresql.auto.conf",
                    lambda: p.prove_conninfo_source(self.standby),
                ),
                (
                    6,
                    "a cloned pg_hba.conf line matches first",
                    lambda: p.prove_hba_match(self.standby),
                ),
            ]
            for number, what, check in late:
                self.record(number, p.attempt(what, check), f"section {number}")

    def prove_ready(self) -> p.Proof:
        ran = self.probe(
            "pg-isready",
            'echo "pg_isready -h $PRIMARY_HOST -p $PRIMARY_PORT -U $READY_USER"\n'
            'pg_isready -h "$PRIMARY_HOST" -p "$PRIMARY_PORT" -U "$READY_USER"',
        )
        command, _, answer = ran.output.partition("\n")
        return p.prove_primary_answers(command, ran.status, answer)

    def summary(self, seconds: float) -> None:
        self.say("\n=== Summary ===")
        for section in self.sections:
            proofs = self.proved.get(section.number, [])
            if not proofs:
                state = "not run"
            else:
                failed = sum(not proof.passed for proof in proofs)
                state = "FAIL" if failed else "PASS"
                state += f" ({len(proofs) - failed}/{len(proofs)} proofs passed)"
            title = section.title if len(section.title) <= 48 else section.title[:45] + "..."
            self.say(f"  section {section.number}  {title:48} {state}")
        everything = [proof for proofs in self.proved.values() for proof in proofs]
        failed = sum(not proof.passed for proof in everything)
        self.say(
            f"{len(everything)} proofs: {len(everything) - failed} passed, {failed} failed "
            f"({seconds:.1f} s)"
        )


def _in_command_words(text: str) -> str:
    """A backend's fix in this command's words: its option is --image; the binaries come
    from PGSTANDBY_PG_BIN (it has no option for them)."""
    text = text.replace("--pgstandby-image=", "--image ").replace("--pgstandby-image", "--image")
    return text.replace("--pgstandby-pg-bin / ", "")


@contextlib.contextmanager
def _stops_become_interrupts() -> Iterator[None]:
    """SIGTERM ends the walk like Ctrl-C does (everything made is removed)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(*_: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def close_steps(steps: Steps) -> None:
    """Remove everything; a second Ctrl-C must not leave half of it behind."""
    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN) if main else None
    try:
        started = time.monotonic()
        print(flush=True)
        steps.close()
        for item in steps.owned():
            print(f"removed: {item}", flush=True)
        print(f"(cleanup took {time.monotonic() - started:.1f} s)", flush=True)
    finally:
        if main:
            signal.signal(signal.SIGINT, previous)


def run(*, backend: str, yes: bool, image: str | None) -> int:
    """Walk through lab/setup-standby.sh on ``backend`` ("local" or "docker"); 0 when
    every proof passed, 1 when one failed, 130 after Ctrl-C (or SIGTERM)."""
    header, sections = split_script(lab_file(SCRIPT).read_text())
    settings = from_sources()
    failed = -1
    try:
        with _stops_become_interrupts():
            print(
                f"pgstandby lab walkthrough: lab/{SCRIPT} one section at a time, on a fresh "
                f"primary ({backend} backend). Preparing the servers...",
                flush=True,
            )
            # on an error or an interrupt, open_steps removes what it made before raising
            try:
                steps = open_steps(
                    backend,
                    image=image or os.environ.get("PGSTANDBY_IMAGE") or LAB_IMAGE_DEFAULT,
                    pg_bin=settings.pg_bin,
                    timeout=settings.timeout,
                )
            except PgStandbyError as exc:
                exc.args = (_in_command_words(str(exc)),)
                raise
            try:
                walk = Walkthrough(steps, header, sections, yes, settings.timeout, steps.secrets())
                failed = walk.through()
            finally:
                close_steps(steps)
    except KeyboardInterrupt:
        print("\ninterrupted: everything the walkthrough made is removed", flush=True)
        return 130
    return 1 if failed else 0
