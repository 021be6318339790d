"""``pgstandby``: build the lab image, bring the classroom lab up and down, or hold a
harness-built pair open for exploration.

    pgstandby image build --pg 15
    pgstandby lab up            # docker-compose lab: postgres-primary-lab + postgres-standby-lab
    pgstandby lab status
    pgstandby lab check         # grade the lab pair with the assertion helpers
    pgstandby lab down
    pgstandby check --primary DSN --standby DSN [--standby-data-dir D | --standby-container C]
    pgstandby doctor --primary DSN --standby DSN [...]   # the first broken step, and its fix
    pgstandby lab doctor        # the same on the lab pair
    pgstandby pair --backend local   # a pair on 127.0.0.1 until Ctrl-C
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence

import psycopg

from . import assertions as a
from . import doctor
from ._text import mask_secrets
from ._wait import poll_until
from .cluster import start_cluster
from .config import BACKENDS, Settings
from .errors import PgStandbyError
from .labfiles import lab_dir, lab_file

LAB_IMAGE_DEFAULT = "pgstandby/postgres:15"
LAB_PASSWORD_DEFAULT = "postgres"  # lab/docker-compose.yml's POSTGRES_PASSWORD default


def _compose() -> list[str]:
    """Debian's docker-compose (v1) or the docker compose plugin, whichever is here."""
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    probe = subprocess.run(["docker", "compose", "version"], capture_output=True)
    if probe.returncode == 0:
        return ["docker", "compose"]
    raise PgStandbyError(
        "neither `docker-compose` nor `docker compose` is installed. Fix: "
        "`apt-get install docker-compose` (Debian) or install the compose plugin."
    )


def image_build(args: argparse.Namespace) -> int:
    argv = ["bash", str(lab_file("image/build.sh")), "--pg", str(args.pg)]
    if args.tag:
        argv += ["--tag", args.tag]
    if args.force:
        argv.append("--force")
    return subprocess.call(argv)


def _lab_container(env: dict[str, str], role: str) -> str:
    """The lab's container names (docker-compose.yml's variables and their defaults)."""
    return env.get(f"PGSTANDBY_LAB_{role.upper()}_CONTAINER") or f"postgres-{role}-lab"


def _lab_dsn(env: dict[str, str], role: str) -> str:
    port = env.get(f"PGSTANDBY_LAB_{role.upper()}_PORT", "5432" if role == "primary" else "5433")
    password = env.get("POSTGRES_PASSWORD", LAB_PASSWORD_DEFAULT)
    return f"host=127.0.0.1 port={port} user=postgres password={password} dbname=postgres"


def _lab_running(env: dict[str, str], role: str) -> bool | None:
    """Whether the lab's container of ``role`` runs (None: it does not exist)."""
    out = subprocess.run(
        ["docker", "inspect", "-f", "{{.State.Running}}", _lab_container(env, role)],
        capture_output=True,
        text=True,
    )
    return out.stdout.strip() == "true" if out.returncode == 0 else None


def _require_lab_up(env: dict[str, str]) -> None:
    states = {role: _lab_running(env, role) for role in ("primary", "standby")}
    down = [
        f"{_lab_container(env, r)} ({'stopped' if s is False else 'absent'})"
        for r, s in states.items()
        if not s
    ]
    if down:
        raise PgStandbyError(
            f"the lab is not up: {', '.join(down)}. Fix: pgstandby lab up (then pgstandby "
            "lab check); for a pair you built yourself, pgstandby check --primary DSN "
            "--standby DSN."
        )


def _refuse_taken_ports(env: dict[str, str]) -> None:
    """Before anything is created: each lab port must be free on 127.0.0.1, unless the lab
    itself already holds it (a second `lab up` is a no-op)."""
    for role, default in (("primary", "5432"), ("standby", "5433")):
        if _lab_running(env, role):
            continue
        var = f"PGSTANDBY_LAB_{role.upper()}_PORT"
        port = env.get(var, default)
        other = int(port) % 50000 + 10000
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", int(port)))
            except OSError as exc:
                raise PgStandbyError(
                    f"cannot bring the lab up: host port {port} for the {role} ({var}) is "
                    f"taken on 127.0.0.1 ({exc.strerror}); nothing was created. Fix: stop "
                    f"what listens there, or choose another port: {var}={other} "
                    "pgstandby lab up (pgstandby lab check then finds it by the same "
                    "variable)."
                ) from None


def _wait_lab_streaming(env: dict[str, str], timeout: float) -> None:
    """Wait (bounded) until the lab's standby streams; the error shows its log tail."""

    def streaming() -> bool:
        with psycopg.connect(_lab_dsn(env, "standby"), connect_timeout=2) as conn:
            row = conn.execute("SELECT status FROM pg_stat_wal_receiver").fetchone()
        return row == ("streaming",)

    def standby_log() -> str:
        out = subprocess.run(
            ["docker", "logs", "--tail", "30", _lab_container(env, "standby")],
            capture_output=True,
            text=True,
        )
        return out.stdout + out.stderr

    poll_until(
        streaming,
        what="the lab's standby to stream from the primary",
        timeout=timeout,
        interval=0.2,
        log=standby_log,
    )


def lab(args: argparse.Namespace) -> int:
    env = dict(os.environ)
    env.setdefault("PGSTANDBY_IMAGE", args.image or LAB_IMAGE_DEFAULT)
    base = [*_compose(), "-f", str(lab_dir() / "docker-compose.yml")]
    if args.action == "up":
        _refuse_taken_ports(env)  # first: a taken port must leave nothing half-made
        # imported here: docker-py and testcontainers cost ~0.2 s, and only `lab up` needs them
        from .backends.docker import availability, connect_docker

        connect_docker().close()  # no daemon: an error that says how to start one
        usable, why = availability(env["PGSTANDBY_IMAGE"])
        if not usable:
            raise PgStandbyError(
                f"cannot bring the lab up: {why}. Fix: `pgstandby image build --pg 15`, or "
                "`docker pull` an official image and pass --image."
            )
        code = subprocess.call([*base, "up", "-d"], env=env)
        if code != 0:
            return code
        standby = _lab_container(env, "standby")
        print(f"waiting for the standby (docker logs -f {standby} shows its setup)")
        _wait_lab_streaming(env, args.timeout)
        print(
            f"lab pair is streaming: primary {mask_secrets(_lab_dsn(env, 'primary'))}, "
            f"standby {mask_secrets(_lab_dsn(env, 'standby'))}. Grade it: pgstandby lab check"
        )
        return 0
    if args.action == "down":
        return subprocess.call([*base, "down", "-v"], env=env)
    if args.action in ("check", "doctor"):
        _require_lab_up(env)
        servers = [
            a.Server(_lab_dsn(env, role), container=_lab_container(env, role))
            for role in ("primary", "standby")
        ]
        return (grade if args.action == "check" else diagnose)(*servers)
    return subprocess.call([*base, "ps"], env=env)


def grade(primary: a.Server, standby: a.Server) -> int:
    """Run every assertion helper on a running pair; print PASS/FAIL per check.
    Exit status 0 when all pass, 1 otherwise. A container name lets the checks read the
    standby's files, and compare addresses as the containers see each other."""
    checks: list[tuple[str, Callable[[], object]]] = [
        ("standby.signal", lambda: a.assert_standby_signal(standby)),
        ("primary_conninfo", lambda: a.assert_primary_conninfo(standby, primary)),
        ("read-only", lambda: a.assert_read_only(standby)),
        ("streaming", lambda: a.assert_streaming(primary, standby)),
        ("replication lag", lambda: a.assert_replication_lag(primary, standby)),
    ]
    failed = 0
    for name, check in checks:
        try:
            check()
            print(f"PASS  {name}")
        except AssertionError as exc:
            failed += 1
            text = _in_cli_words(str(exc))
            print(f"FAIL  {name}\n" + "\n".join("      " + line for line in text.splitlines()))
    print(f"{len(checks) - failed} passed, {failed} failed")
    return 1 if failed else 0


#: The Python API's words in the helpers' fixes, and what a user of this command types.
_CLI_WORDS = (
    ("Pass the primary as a Node or Server(dsn, container=...)", "Give --primary-container NAME"),
    (
        "Server(dsn, data_dir=...) / Server(dsn, container=...)",
        "--standby-data-dir DIR or --standby-container NAME",
    ),
    ("Server(dsn, data_dir='/path/to/data')", "--standby-data-dir DIR"),
    ("Server(dsn, container='<container name>')", "--standby-container NAME"),
    ("Server(dsn, container=...)", "--primary-container / --standby-container NAME"),
    ("Server(dsn, data_dir=...)", "--standby-data-dir DIR"),
)


def _in_cli_words(text: str) -> str:
    for api, cli in _CLI_WORDS:
        text = text.replace(api, cli)
    return text


def diagnose(primary: a.Server, standby: a.Server) -> int:
    """The seed's troubleshooting list on a running pair; exit status 1 when a step is
    broken (the first one is named)."""
    text, status = doctor.report(doctor.diagnose(primary, standby))
    print(_in_cli_words(text))
    return status


def _given_pair(args: argparse.Namespace) -> tuple[a.Server, a.Server]:
    """The pair named by `check`'s and `doctor`'s options (see _add_pair_options)."""
    primary = a.Server(args.primary, container=args.primary_container)
    standby = a.Server(
        args.standby, data_dir=args.standby_data_dir, container=args.standby_container
    )
    return primary, standby


def check(args: argparse.Namespace) -> int:
    return grade(*_given_pair(args))


def doctor_command(args: argparse.Namespace) -> int:
    return diagnose(*_given_pair(args))


def _add_pair_options(command: argparse.ArgumentParser) -> None:
    command.add_argument("--primary", required=True, help="libpq DSN of the primary")
    command.add_argument("--standby", required=True, help="libpq DSN of the standby")
    where = command.add_mutually_exclusive_group()
    where.add_argument("--standby-data-dir", help="the standby's data directory on this machine")
    where.add_argument("--standby-container", help="the standby's Docker container")
    command.add_argument("--primary-container", help="the primary's Docker container, if any")


def pair(args: argparse.Namespace) -> int:
    overrides = {"backend": args.backend, "standbys": args.standbys, "image": args.image}
    settings = Settings().with_overrides(**{k: v for k, v in overrides.items() if v is not None})
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with start_cluster(settings) as cluster:
        print(f"pair is up: {cluster.describe()}")
        for node in cluster.nodes:
            print(f"  {node.name:10} {mask_secrets(node.dsn)}   data: {node.data_dir}")
        print("Ctrl-C stops and removes it.", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            stop.wait()
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pgstandby", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)

    image = sub.add_parser("image", help="the lab image").add_subparsers(
        dest="action", required=True
    )
    build = image.add_parser("build", help="build pgstandby/postgres:<pg> with no registry")
    build.add_argument("--pg", type=int, default=15, help="PostgreSQL major version (default 15)")
    build.add_argument("--tag", help="image tag (default pgstandby/postgres:<pg>)")
    build.add_argument("--force", action="store_true", help="rebuild even if the tag exists")
    build.set_defaults(func=image_build)

    lab_p = sub.add_parser("lab", help="the classroom docker-compose lab")
    lab_p.add_argument("action", choices=("up", "down", "status", "check", "doctor"))
    lab_p.add_argument("--image", help=f"image of both servers (default {LAB_IMAGE_DEFAULT})")
    lab_p.add_argument(
        "--timeout", type=float, default=120.0, help="seconds `up` waits for streaming"
    )
    lab_p.set_defaults(func=lab)

    check_p = sub.add_parser("check", help="grade a running pair with the assertion helpers")
    _add_pair_options(check_p)
    check_p.set_defaults(func=check)

    doctor_p = sub.add_parser(
        "doctor", help="the troubleshooting list on a running pair: the first broken step"
    )
    _add_pair_options(doctor_p)
    doctor_p.set_defaults(func=doctor_command)

    pair_p = sub.add_parser("pair", help="bring a harness-built pair up until Ctrl-C")
    pair_p.add_argument("--backend", choices=BACKENDS, default=None)
    pair_p.add_argument("--standbys", type=int, default=None)
    pair_p.add_argument("--image", default=None)
    pair_p.set_defaults(func=pair)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return int(args.func(args))
    except PgStandbyError as exc:
        print(f"pgstandby: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
