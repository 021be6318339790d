"""`pgstandby lab walkthrough` on the local backend: every section of setup-standby.sh
printed, run and proved on real servers, and nothing left afterwards; and each proof
both passing and failing on a state where it must."""

from __future__ import annotations

import os
import re
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_pgstandby import Cluster
from pytest_pgstandby.backends.external import Server
from pytest_pgstandby.backends.stepwise import LocalSteps
from pytest_pgstandby.classroom import proofs
from pytest_pgstandby.classroom.walkthrough import (
    SECTIONS,
    Walkthrough,
    close_steps,
    split_script,
    squeeze,
)
from pytest_pgstandby.errors import PgStandbyError
from pytest_pgstandby.labfiles import lab_file
from pytest_pgstandby.node import Node, as_node

TIMEOUT = 120


def command(backend: str, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "pytest_pgstandby.cli",
        "lab",
        "walkthrough",
        "--backend",
        backend,
        *extra,
    ]


def walk(backend: str, *extra: str) -> tuple[int, str, int]:
    """Run the walkthrough with --yes: (exit status, output, its pid)."""
    proc = subprocess.Popen(
        command(backend, "--yes", *extra),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    out, _ = proc.communicate(timeout=TIMEOUT)
    return proc.returncode, out, proc.pid


def chunks(out: str) -> dict[int, str]:
    """Each section's part of the output (the last one runs up to the summary)."""
    parts = re.split(r"^=== Section (\d) of 7: .*$", out.split("=== Summary ===")[0], flags=re.M)
    return {int(parts[i]): parts[i + 1] for i in range(1, len(parts), 2)}


def assert_every_section_shown_and_passed(out: str) -> dict[int, str]:
    """Each section printed its lines of setup-standby.sh (numbered as in the file),
    and its proofs, all PASS; returns the sections' parts of the output."""
    _, sections = split_script(lab_file("setup-standby.sh").read_text())
    parts = chunks(out)
    assert sorted(parts) == list(range(1, SECTIONS + 1)), out
    for section in sections:
        part = parts[section.number]
        for number, line in enumerate(section.lines, start=section.first):
            assert f"{number:3} | {line}".rstrip() in part, (section.number, line)
        assert "\n  PASS  " in part, part
        assert "FAIL" not in part, part
    assert "13 proofs: 13 passed, 0 failed" in out
    return parts


def assert_common_proofs(parts: dict[int, str]) -> None:
    """What the proofs must have seen, whatever the backend."""
    assert "after:  .walkthrough-dotfile\n" in parts[2]
    assert ".walkthrough-dotfile survived" in parts[2]
    assert "removes .walkthrough-dotfile" in parts[3]
    assert "standby.signal: present at" in parts[3]
    assert re.search(r"primary_conninfo = 'user=replicator password=\*{8} ", parts[3])
    assert re.search(r"\bstandby\.signal 0 B\b", parts[3])  # listed among the copied files
    assert "which one PostgreSQL uses: proved after section 7" in parts[4]
    assert "standby.signal: present, 0 bytes" in parts[5]
    last = parts[7]
    assert re.search(r"pg_settings: sourcefile \S*/postgresql\.auto\.conf, line \d+", last)
    assert "(pg_file_settings.applied = False)" in last  # section 4's line, overridden
    assert "SELECT pg_is_in_recovery() -> True" in last
    assert "status streaming" in last
    assert "SELECT there finds 1 row(s)" in last
    assert "cannot execute INSERT in a read-only transaction (SQLSTATE 25006)" in last
    fits = re.search(r"fits line (\d+) first", last)
    logged = re.search(r"Connection matched pg_hba\.conf line (\d+):", last)
    appended = re.search(r"section 6's lines \((\d+), (\d+)\)", last)
    assert fits and logged and appended, last
    assert fits.group(1) == logged.group(1)
    assert int(logged.group(1)) < int(appended.group(1))
    assert re.search(
        r"PASS  a connection to the standby matches a cloned pg_hba.conf line "
        r"first  \[section 6\]",
        last,
    )
    assert "[section 4]" in last


def assert_no_password_shown(out: str) -> None:
    assert not re.search(r"password=(?!\*{8}|\$POSTGRES_REPLICATION_PASSWORD)", out), out


def _cmdlines_mentioning(text: str) -> list[str]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if text in cmdline:
                found.append(f"{entry.name}: {cmdline}")
    return found


def assert_nothing_left_locally(out: str) -> None:
    root = re.search(r"made for this walkthrough: directory (\S+)", out)
    ports = re.findall(r"server 127\.0\.0\.1:(\d+)", out)
    assert root and len(ports) >= 2, out
    assert not Path(root.group(1)).exists()
    assert _cmdlines_mentioning(root.group(1)) == []
    for port in ports:  # their reservations are released too
        assert not (Path(root.group(1)).parent / f".pgstandby-port-{port}").exists()
    assert f"removed: directory {root.group(1)}" in out


def test_walkthrough_runs_and_proves_every_section_then_removes_everything() -> None:
    started = time.monotonic()
    status, out, _ = walk("local")
    print(f"local walkthrough: {time.monotonic() - started:.1f} s")
    assert status == 0, out
    parts = assert_every_section_shown_and_passed(out)
    assert_common_proofs(parts)
    assert "127.0.0.1:" in parts[1] and "accepting connections (exit 0)" in parts[1]
    assert_no_password_shown(out)
    assert_nothing_left_locally(out)


def _read_until(proc: subprocess.Popen[bytes], wanted: bytes, seen: bytearray) -> None:
    """Read the walkthrough's output until ``wanted`` (a prompt has no newline)."""
    assert proc.stdout is not None
    deadline = time.monotonic() + TIMEOUT
    while wanted not in seen:
        left = deadline - time.monotonic()
        assert left > 0, f"no {wanted!r} within {TIMEOUT} s:\n{seen.decode()}"
        ready, _, _ = select.select([proc.stdout], [], [], left)
        if ready:
            chunk = os.read(proc.stdout.fileno(), 65536)
            assert chunk, f"the walkthrough ended before {wanted!r}:\n{seen.decode()}"
            seen += chunk


@pytest.fixture
def interactive() -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(
        command("local"), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    yield proc
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def test_without_yes_it_waits_for_enter_and_ctrl_c_removes_everything(
    interactive: subprocess.Popen[bytes],
) -> None:
    assert interactive.stdin is not None
    seen = bytearray()
    for n in (1, 2, 3):
        _read_until(interactive, f"Press Enter to run section {n} ".encode(), seen)
        assert f"Press Enter to run section {n + 1}".encode() not in seen
        interactive.stdin.write(b"\n")
        interactive.stdin.flush()
    _read_until(interactive, b"Press Enter to run section 4 ", seen)
    assert b"PASS  pg_basebackup -R wrote standby.signal" in seen
    interactive.send_signal(signal.SIGINT)
    rest, _ = interactive.communicate(timeout=TIMEOUT)
    out = (seen + rest).decode()
    assert interactive.returncode == 130, out
    assert "interrupted: everything the walkthrough made is removed" in out
    assert "Traceback" not in out
    assert_nothing_left_locally(out)


# the proofs, each where it must pass and where it must fail ------------------------------


def files_node(data_dir: Path) -> Node:
    """A data directory on disk, without a server (a proof reads its files only)."""
    return as_node(Server("host=127.0.0.1 port=1 user=postgres", data_dir=str(data_dir)))


def test_section_5_proof_fails_without_standby_signal_and_passes_with_it(tmp_path: Path) -> None:
    failed = proofs.prove_standby_signal(files_node(tmp_path))
    assert not failed.passed
    assert failed.lines() == [
        "FAIL  standby.signal exists",
        f"      not found: {tmp_path}/standby.signal",
    ]
    (tmp_path / "standby.signal").touch()
    passed = proofs.prove_standby_signal(files_node(tmp_path))
    assert passed.passed
    assert passed.lines()[0] == "PASS  standby.signal exists"
    assert f"{tmp_path}/standby.signal: present, 0 bytes" in passed.lines()[1]


def test_section_1_proof_fails_when_pg_isready_gets_no_response() -> None:
    command = "pg_isready -h 127.0.0.1 -p 1 -U postgres"
    failed = proofs.prove_primary_answers(command, 2, "127.0.0.1:1 - no response\n")
    assert not failed.passed
    assert failed.seen == [f"`{command}` answered: 127.0.0.1:1 - no response (exit 2)"]
    ok = proofs.prove_primary_answers(command, 0, "127.0.0.1:1 - accepting connections")
    assert ok.passed


def test_section_2_proof_fails_when_a_name_is_left_or_the_dotfile_is_gone() -> None:
    dot = proofs.Entry(".walkthrough-dotfile", False, 9, 1)
    old = proofs.Entry("PG_VERSION", False, 3, 1)
    assert proofs.prove_emptied([dot, old], [dot], dot.name).passed
    left = proofs.prove_emptied([dot, old], [dot, old], dot.name)
    assert not left.passed
    assert "after:  .walkthrough-dotfile, PG_VERSION" in left.seen
    gone = proofs.prove_emptied([dot, old], [], dot.name)
    assert not gone.passed
    assert ".walkthrough-dotfile is gone (it was in the directory before the section)" in gone.seen


def test_section_3_proofs_fail_on_an_empty_data_directory(tmp_path: Path) -> None:
    files = proofs.prove_recovery_files(files_node(tmp_path))
    assert not files.passed
    assert files.seen[0] == f"standby.signal: missing at {tmp_path}/standby.signal"
    assert "postgresql.auto.conf: missing" in files.seen
    copied = proofs.prove_copied([])
    assert not copied.passed
    assert copied.seen[0] == "0 files, 0 B in 0 entries:"
    (tmp_path / "standby.signal").touch()
    (tmp_path / "postgresql.auto.conf").write_text("primary_conninfo = 'host=h password=s3cr3t'\n")
    ok = proofs.prove_recovery_files(files_node(tmp_path))
    assert ok.passed
    assert "s3cr3t" not in "\n".join(ok.lines())


def test_section_4_and_6_file_proofs_fail_without_the_appended_lines(tmp_path: Path) -> None:
    (tmp_path / "postgresql.conf").write_text("port = 5432\n")
    (tmp_path / "pg_hba.conf").write_text("local all all trust\n")
    conf = proofs.prove_appended_conninfo(files_node(tmp_path))
    assert not conf.passed
    assert conf.seen[0] == "postgresql.conf:1: port = 5432"
    hba = proofs.prove_hba_appended(files_node(tmp_path))
    assert not hba.passed
    assert hba.seen[0] == "pg_hba.conf:1: local all all trust"
    with open(tmp_path / "postgresql.conf", "a") as out:
        out.write("\n# Standby configuration\nprimary_conninfo = 'host=h password=p4ss'\n")
    with open(tmp_path / "pg_hba.conf", "a") as out:
        out.write("host all all 0.0.0.0/0 trust\nhost replication all 0.0.0.0/0 trust\n")
    assert proofs.prove_appended_conninfo(files_node(tmp_path)).passed
    hba = proofs.prove_hba_appended(files_node(tmp_path))
    assert hba.passed
    assert hba.seen[:2] == [
        "pg_hba.conf:2: host all all 0.0.0.0/0 trust",
        "pg_hba.conf:3: host replication all 0.0.0.0/0 trust",
    ]


def test_section_7_proofs_pass_on_a_standby_and_fail_on_the_primary(pair: Cluster) -> None:
    primary, standby = pair.primary, pair.standby
    assert proofs.prove_in_recovery(standby).passed
    on_primary = proofs.prove_in_recovery(primary)
    assert not on_primary.passed
    assert on_primary.seen == ["SELECT pg_is_in_recovery() -> False"]

    assert proofs.prove_streaming(standby, 30).passed
    not_streaming = proofs.attempt("streams", lambda: proofs.prove_streaming(primary, 0.3))
    assert not not_streaming.passed
    assert "timed out after 0.3s" in "\n".join(not_streaming.seen)

    assert proofs.prove_replayed(primary, standby, 30).passed
    assert proofs.prove_write_refused(standby).passed
    writable = proofs.prove_write_refused(primary)
    assert not writable.passed
    assert writable.seen == ["INSERT on the standby succeeded: it is not read-only"]

    source = proofs.prove_conninfo_source(standby)
    assert source.passed, source.lines()
    no_source = proofs.prove_conninfo_source(primary)
    assert not no_source.passed
    assert no_source.seen[0].startswith("pg_settings: sourcefile None")

    match = proofs.prove_hba_match(standby)
    assert match.passed, match.lines()
    unappended = proofs.prove_hba_match(primary)  # its pg_hba.conf has no trust lines added
    assert not unappended.passed
    assert any("Connection matched pg_hba.conf line" in line for line in unappended.seen)


def test_the_script_splits_into_its_seven_sections_or_says_what_is_missing() -> None:
    header, sections = split_script(lab_file("setup-standby.sh").read_text())
    assert "set -e" in header and "# Section" not in header
    assert [s.number for s in sections] == list(range(1, 8))
    assert sections[1].lines[-1] == 'rm -rf "${DATA_DIR:?}"/*'
    assert sections[-1].lines[-1] == 'eval "exec $START_COMMAND"'
    with pytest.raises(PgStandbyError, match=r"section comments \[1, 3\].*Fix: restore"):
        split_script("set -e\n# Section 1: a\ntrue\n# Section 3: b\ntrue\n")


def test_a_wait_loop_output_is_squeezed() -> None:
    loop = "start\n" + "x:1 - no response\nWaiting...\n" * 5 + "x:1 - accepting\n"
    assert squeeze(loop) == [
        "start",
        "x:1 - no response",
        "Waiting...",
        "... the same 2 line(s) 4 more times",
        "x:1 - accepting",
    ]
    assert squeeze("10%\r50%\r100%\ndone\n") == ["10%", "50%", "100%", "done"]


def test_a_failing_section_stops_the_walk_fails_it_and_removes_everything(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A real failure: the standby's script given a replication password the primary
    does not have, so section 3's pg_basebackup is refused."""
    header, sections = split_script(lab_file("setup-standby.sh").read_text())
    steps = LocalSteps(None, timeout=30)
    root = steps.backend.root
    steps.env["POSTGRES_REPLICATION_PASSWORD"] = "not-the-password"
    try:
        failed = Walkthrough(steps, header, sections, True, 30, steps.secrets()).through()
    finally:
        close_steps(steps)
    out = capsys.readouterr().out
    assert failed == 1
    assert 'password authentication failed for user "replicator"' in out
    assert "FAIL  section 3's commands succeed\n        they exited with status 1" in out
    assert "Section 3 failed: the sections after it are not run." in out
    assert re.search(r"section 4 +additional standby configuration +not run", out)
    assert "3 proofs: 2 passed, 1 failed" in out
    assert "=== Section 4" not in out
    assert not root.exists()
    assert _cmdlines_mentioning(str(root)) == []
