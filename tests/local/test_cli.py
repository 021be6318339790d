"""`pgstandby check` grades a running pair from DSNs, as a classroom grader would."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from pytest_pgstandby import Cluster, Settings, start_cluster
from pytest_pgstandby.backends.sessions import processes_under


def _check(*args: str, command: str = "check") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest_pgstandby.cli", command, *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_check_passes_a_healthy_pair_and_fails_a_promoted_one(
    pgstandby_settings: Settings,
) -> None:
    with start_cluster(pgstandby_settings, backend="local") as cluster:
        args = (
            f"--primary={cluster.primary.dsn}",
            f"--standby={cluster.standby.dsn}",
            f"--standby-data-dir={cluster.standby.data_dir}",
        )
        healthy = _check(*args)
        assert healthy.returncode == 0, healthy.stdout + healthy.stderr
        assert healthy.stdout.splitlines() == [
            "PASS  standby.signal",
            "PASS  primary_conninfo",
            "PASS  read-only",
            "PASS  streaming",
            "PASS  replication lag",
            "5 passed, 0 failed",
        ]
        cluster.standby.promote()
        broken = _check(*args)
        assert broken.returncode == 1
        assert "FAIL  standby.signal" in broken.stdout
        assert "FAIL  read-only" in broken.stdout
        assert broken.stdout.splitlines()[-1].endswith("failed")


def test_check_without_arguments_is_a_usage_error() -> None:
    result = _check()
    assert result.returncode == 2
    assert "the following arguments are required: --primary, --standby" in result.stderr


def test_pair_holds_a_local_pair_until_interrupted_then_removes_it() -> None:
    """PGSTANDBY_* shape it as they shape the plugin's (issue 20 #10: they were ignored)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest_pgstandby.cli", "pair"],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PGSTANDBY_BACKEND": "local", "PGSTANDBY_STANDBYS": "2"},
    )
    assert proc.stdout is not None
    lines = []
    try:
        for line in proc.stdout:  # bounded by the harness's own startup timeout
            lines.append(line)
            if line.startswith("Ctrl-C"):
                break
        assert any(line.strip().startswith("standby2") for line in lines), lines
        assert "local:" in lines[0], lines[0]
        standby_line = next(line for line in lines if line.strip().startswith("standby1"))
        dsn = standby_line.split(None, 1)[1].split("   data:")[0]
        data_dir = Path(standby_line.rsplit("data: ", 1)[1].strip())
        # issue 20 #9: no password printed; they are in a 0600 passfile, gone with the pair
        assert all("password=" not in line for line in lines), lines
        passfile = Path(re.search(r"passwords: in (\S+) \(0600", "".join(lines))[1])  # type: ignore[index]
        assert passfile.stat().st_mode & 0o777 == 0o600
        with psycopg.connect(dsn, passfile=str(passfile)) as conn:
            assert conn.execute("SELECT pg_is_in_recovery()").fetchone() == (True,)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not data_dir.exists() and not passfile.exists()
    assert processes_under(data_dir.parent) == []


def test_pair_refuses_servers_it_did_not_start_naming_check_not_options_it_lacks(
    tmp_path: Path,
) -> None:
    env = {**os.environ, "PGSTANDBY_TMPDIR": str(tmp_path)}
    given = subprocess.run(
        [sys.executable, "-m", "pytest_pgstandby.cli", "pair"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**env, "PGSTANDBY_PRIMARY_DSN": "host=127.0.0.1 port=1 password=secret"},
    )
    assert given.returncode == 2, given.stderr
    assert given.stderr.startswith("pgstandby: error: pgstandby pair brings up a pair of its own")
    assert "pgstandby check --primary DSN --standby DSN" in given.stderr
    assert len(given.stderr.strip().splitlines()) == 1 and "secret" not in given.stderr
    asked = subprocess.run(
        [sys.executable, "-m", "pytest_pgstandby.cli", "pair", "--backend", "external"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert asked.returncode == 2 and "invalid choice: 'external'" in asked.stderr
    assert "--primary-dsn" not in asked.stderr  # an option pair does not have
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("count", ["0", "-1"])
def test_pair_refuses_no_standbys_in_its_own_words_before_starting_anything(
    count: str, tmp_path: Path
) -> None:
    (tmp_path / "precious.txt").write_text("keep")
    result = subprocess.run(
        [sys.executable, "-m", "pytest_pgstandby.cli", "pair", "--standbys", count],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PGSTANDBY_TMPDIR": str(tmp_path)},
    )
    assert result.returncode == 2
    assert result.stderr == (
        f"pgstandby: error: standbys={count}: a cluster needs at least one standby. "
        "Fix: --standbys 1 or more.\n"
    )
    assert "pair is up" not in result.stdout
    assert [p.name for p in tmp_path.iterdir()] == ["precious.txt"]


def test_check_misuse_gets_one_line_in_the_clis_words(pgstandby_settings: Settings) -> None:
    malformed = _check("--primary=host=127.0.0.1 port=1", "--standby=bogus dsn")
    assert malformed.returncode == 2 and "Traceback" not in malformed.stderr
    lines = malformed.stderr.strip().splitlines()
    assert len(lines) == 1, malformed.stderr
    assert "'bogus dsn' is not a libpq conninfo string or URI" in lines[0]
    assert "Fix: 'host=... port=... user=...'" in lines[0]
    with start_cluster(pgstandby_settings, backend="local") as cluster:
        no_files = _check(f"--primary={cluster.primary.dsn}", f"--standby={cluster.standby.dsn}")
    assert no_files.returncode == 1
    assert "--standby-data-dir DIR" in no_files.stdout  # what a CLI user types...
    assert "Server(dsn" not in no_files.stdout  # ...not the Python API's words


def _lab(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest_pgstandby.cli", "lab", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **env},
    )


def test_lab_check_with_no_lab_up_says_so_and_how() -> None:
    names = {
        "PGSTANDBY_LAB_PRIMARY_CONTAINER": f"no-lab-{os.getpid()}-p",
        "PGSTANDBY_LAB_STANDBY_CONTAINER": f"no-lab-{os.getpid()}-s",
    }
    result = _lab("check", **names)
    assert result.returncode == 2
    if subprocess.run(["docker", "info"], capture_output=True).returncode != 0:
        # this account cannot ask Docker (the unprivileged run): it must not say "absent"
        assert result.stderr.startswith("pgstandby: error: cannot ask Docker about the lab")
        return
    assert result.stderr.strip() == (
        f"pgstandby: error: the lab is not up: {names['PGSTANDBY_LAB_PRIMARY_CONTAINER']} "
        f"(absent), {names['PGSTANDBY_LAB_STANDBY_CONTAINER']} (absent). Fix: pgstandby lab "
        "up (then pgstandby lab check); for a pair you built yourself, pgstandby check "
        "--primary DSN --standby DSN."
    )


def test_lab_up_with_a_taken_port_names_the_variable_and_creates_nothing() -> None:
    project = f"no-lab-{os.getpid()}"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = _lab(
            "up",
            PGSTANDBY_LAB_PRIMARY_CONTAINER=f"{project}-p",
            PGSTANDBY_LAB_STANDBY_CONTAINER=f"{project}-s",
            PGSTANDBY_LAB_PRIMARY_PORT=str(port),
            COMPOSE_PROJECT_NAME=project,
        )
    assert result.returncode == 2
    assert f"host port {port} for the primary (PGSTANDBY_LAB_PRIMARY_PORT) is taken" in (
        result.stderr
    )
    assert "nothing was created" in result.stderr
    # refused before Docker was asked for anything (it need not even be reachable here);
    # where a daemon answers, it holds nothing of the project
    listed = subprocess.run(
        ["docker", "ps", "-a", "--filter", f"name={project}", "--format", "{{.Names}}"],
        capture_output=True,
        text=True,
    )
    assert listed.stdout.strip() == "", listed.stdout


def _doctor(cluster: Cluster) -> subprocess.CompletedProcess[str]:
    return _check(
        f"--primary={cluster.primary.dsn}",
        f"--standby={cluster.standby.dsn}",
        f"--standby-data-dir={cluster.standby.data_dir}",
        command="doctor",
    )


def test_doctor_names_the_first_broken_step_its_evidence_and_fix(
    pgstandby_settings: Settings,
) -> None:
    with start_cluster(pgstandby_settings, backend="local") as cluster:
        healthy = _doctor(cluster)
        assert healthy.returncode == 0, healthy.stdout + healthy.stderr
        assert [line.split(":")[0] for line in healthy.stdout.splitlines()[:-1]] == [
            "ok      primary is ready",
            "ok      data directory",
            "ok      base backup",
            "ok      standby.signal exists",
            "ok      primary_conninfo",
            "ok      primary reachable from the standby",
            "ok      authentication",
            "ok      WAL still available",
            "ok      streaming",
        ]
        cluster.primary.execute("ALTER ROLE replicator NOREPLICATION")
        no_role = _doctor(cluster)
        assert no_role.returncode == 1
        assert no_role.stdout.splitlines()[-1] == "first broken step: authentication"
        assert "BROKEN  authentication: role 'replicator' (primary_conninfo's user) has " in (
            no_role.stdout
        )
        assert "fix: CREATE/ALTER ROLE replicator WITH REPLICATION LOGIN" in no_role.stdout
        cluster.primary.execute("ALTER ROLE replicator REPLICATION")
        Path(cluster.standby.data_dir, "standby.signal").unlink()
        no_signal = _doctor(cluster)
        assert no_signal.returncode == 1
        assert no_signal.stdout.splitlines()[-1] == "first broken step: standby.signal exists"
        assert "fix: touch standby.signal in the data directory" in no_signal.stdout


def test_lab_check_without_an_answering_docker_says_so_not_that_the_lab_is_absent() -> None:
    env = {**os.environ, "DOCKER_HOST": "unix:///nonexistent/docker.sock"}
    result = subprocess.run(
        [sys.executable, "-m", "pytest_pgstandby.cli", "lab", "check"],
        capture_output=True, text=True, timeout=60, env=env,
    )  # fmt: skip
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot ask Docker about the lab's primary" in lines[0]
    assert "/nonexistent/docker.sock" in lines[0] and "Fix: start a daemon" in lines[0]
    assert "absent" not in lines[0]


@pytest.fixture
def not_postgres_ports() -> Iterator[dict[str, int]]:
    """Two ports of this test on 127.0.0.1 where no PostgreSQL listens: one answers as an
    HTTP server would, one accepts connections and says nothing."""
    servers: dict[str, socket.socket] = {}
    stop = threading.Event()
    for kind in ("http", "silent"):
        listener = socket.create_server(("127.0.0.1", 0))
        listener.settimeout(0.2)
        servers[kind] = listener

    def serve(kind: str, listener: socket.socket) -> None:
        held = []
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            held.append(conn)
            if kind == "http":
                conn.recv(64)
                conn.sendall(b"HTTP/1.0 400 Bad Request\r\n\r\n")
        for conn in held:
            conn.close()

    threads = [threading.Thread(target=serve, args=item) for item in servers.items()]
    for thread in threads:
        thread.start()
    yield {kind: listener.getsockname()[1] for kind, listener in servers.items()}
    stop.set()
    for thread in threads:
        thread.join()
    for listener in servers.values():
        listener.close()


@pytest.mark.parametrize("kind", ["http", "silent"])
@pytest.mark.parametrize("command", ["check", "doctor"])
def test_check_and_doctor_refuse_a_port_where_no_postgresql_answers_in_one_line(
    pgstandby_settings: Settings, not_postgres_ports: dict[str, int], kind: str, command: str
) -> None:
    """Issue 20 #10: it printed five timeouts over 23 s (a silent port), then graded
    another standby's walsender as this one's."""
    port = not_postgres_ports[kind]
    with start_cluster(pgstandby_settings, backend="local") as cluster:
        result = _check(
            f"--primary={cluster.primary.dsn}",
            f"--standby=host=127.0.0.1 port={port} user=postgres password=secret",
            command=command,
        )
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and result.stdout == "", result.stdout + result.stderr
    expected = {
        "http": "it answered, but not as PostgreSQL does (received invalid response to SSL",
        "silent": "nothing answered within 3 s",
    }[kind]
    assert f"port={port}" in lines[0] and "no PostgreSQL server there" in lines[0], lines[0]
    assert expected in lines[0] and "Fix: the standby's DSN" in lines[0], lines[0]
    assert "secret" not in result.stderr


def test_help_is_plain_text_with_the_examples() -> None:
    shown = _check(command="--help")
    assert shown.returncode == 0 and "``" not in shown.stdout, shown.stdout
    assert shown.stdout.splitlines()[2].startswith("pgstandby: build the lab image")
    assert "examples:\n    pgstandby image build --pg 15" in shown.stdout
