"""``pgstandby``: build the lab image, bring the classroom lab up and down, or hold a
harness-built pair open for exploration.

    pgstandby image build --pg 15       (13, 15 or 17: bullseye, bookworm, trixie)
    pgstandby lab up            # docker-compose lab: postgres-primary-lab + postgres-standby-lab
    pgstandby lab status [--watch]   # the containers; --watch: live byte/time lag
    pgstandby lab check         # grade the lab pair with the assertion helpers
    pgstandby lab lag --seconds 10 --load --out lag.png
    pgstandby lab walkthrough [--backend docker|local] [--yes]
    pgstandby lab exercise list | start N | reset
    pgstandby lab down
    pgstandby check --primary DSN --standby DSN [--standby-data-dir D | --standby-container C]
    pgstandby doctor --primary DSN --standby DSN [...]   # the first broken step, and its fix
    pgstandby lab doctor        # the same on the lab pair
    pgstandby lag --primary DSN --standby DSN --seconds 10 --load --out lag.png
    pgstandby pair --backend local   # a pair on 127.0.0.1 until Ctrl-C
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor

from psycopg.conninfo import conninfo_to_dict, make_conninfo

from . import assertions as a
from ._wait import poll_until
from .backends.base import not_postgres, shown_dsn
from .classroom import doctor, exercises, lagview, walkthrough
from .classroom.labctl import LAB_IMAGE_DEFAULT, Lab
from .cluster import start_cluster
from .config import BACKENDS, from_sources
from .errors import ConfigurationError, PgStandbyError, WaitTimeoutError
from .labfiles import lab_file
from .node import Node


def image_build(args: argparse.Namespace) -> int:
    argv = ["bash", str(lab_file("image/build.sh")), "--pg", str(args.pg)]
    if args.tag:
        argv += ["--tag", args.tag]
    if args.suite:
        argv += ["--suite", args.suite]
    # build.sh judges its own arguments (one list of majors, in the script); asked first,
    # so that bad input gets one line here before any apt, debootstrap or docker work
    judged = subprocess.run([*argv, "--check-args"], capture_output=True, text=True)
    if judged.returncode != 0:
        raise ConfigurationError(judged.stderr.strip().removeprefix("build.sh: error: "))
    if args.force:
        argv.append("--force")
    return subprocess.call(argv)


def lab(args: argparse.Namespace) -> int:
    the_lab = Lab(image=args.image)
    if args.action == "up":
        code = the_lab.up(args.timeout)
        if code == 0:
            print(the_lab.streaming_line())
        return code
    if args.action == "down":
        return the_lab.down()
    if args.action == "status":
        if args.watch:
            return lagview.watch(*the_lab.servers(), interval=args.interval, count=args.count)
        return the_lab.compose("ps")
    if args.action == "check":
        if args.wait:
            wait_to_pass(the_lab.servers, args.wait)
        return grade(*the_lab.servers())
    if args.action == "doctor":
        return diagnose(*the_lab.servers(running=False))  # a lab that failed is its case
    if args.action == "lag":
        return lagview.lag_command(*the_lab.servers(), seconds=args.seconds, load=args.load,
                                   out=args.out)  # fmt: skip
    if args.action == "walkthrough":
        return walkthrough.run(backend=args.backend, yes=args.yes, image=args.image)
    return exercises.command(the_lab, args)


def _checks(primary: a.Server, standby: a.Server) -> list[tuple[str, Callable[[], object]]]:
    return [
        ("standby.signal", lambda: a.assert_standby_signal(standby)),
        ("primary_conninfo", lambda: a.assert_primary_conninfo(standby, primary)),
        ("read-only", lambda: a.assert_read_only(standby)),
        ("streaming", lambda: a.assert_streaming(primary, standby)),
        ("replication lag", lambda: a.assert_replication_lag(primary, standby)),
    ]


def wait_to_pass(servers: Callable[[], tuple[a.Server, a.Server]], seconds: float) -> None:
    """Poll (bounded by ``seconds``) until every check passes, quietly: a standby that
    re-clones itself after a fix fails some checks for a while. The grade printed after
    says how it ended."""

    def passes() -> bool:
        for _, check in _checks(*servers()):
            check()
        return True

    print(f"waiting up to {seconds:g} s for every check to pass...", flush=True)
    with contextlib.suppress(WaitTimeoutError):
        poll_until(passes, what="every check to pass", timeout=seconds, interval=1.0)


def _failure(check: Callable[[], object]) -> AssertionError | None:
    try:
        check()
    except AssertionError as exc:
        return exc
    return None


def grade(primary: a.Server, standby: a.Server) -> int:
    """Run every assertion helper on a running pair; print PASS/FAIL per check.
    Exit status 0 when all pass, 1 otherwise. A container name lets the checks read the
    standby's files, and compare addresses as the containers see each other."""
    checks = _checks(primary, standby)
    failed = 0
    # side by side, printed in order: a failing check waits out its bound (streaming 5 s,
    # the lag 2.5 s), and those of a broken pair added up to 9 s one after another
    with ThreadPoolExecutor(len(checks), thread_name_prefix="pgstandby-check") as pool:
        outcomes = [pool.submit(_failure, check) for _, check in checks]
    for (name, _), outcome in zip(checks, outcomes, strict=True):
        exc = outcome.result()  # an error other than a failed check is raised here
        if exc is None:
            print(f"PASS  {name}")
        else:
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
    """The pair named by `check`'s and `doctor`'s options (see _add_pair_options); a DSN
    where no PostgreSQL answers is refused at once, in one line (each check would wait
    out its own timeout on it)."""
    primary = a.Server(args.primary, container=args.primary_container)
    standby = a.Server(
        args.standby, data_dir=args.standby_data_dir, container=args.standby_container
    )
    for role, server in (("primary", primary), ("standby", standby)):
        seen = not_postgres(server.dsn)
        if seen is not None:
            raise ConfigurationError(
                f"--{role} {shown_dsn(server.dsn)}: no PostgreSQL server there: {seen}. "
                f"Fix: the {role}'s DSN, with the port its server listens on (`SHOW port`); "
                "if that server is frozen (paused, stopped with SIGSTOP), resume it first."
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


def _add_lag_options(command: argparse.ArgumentParser) -> None:
    command.add_argument("--seconds", type=float, default=10.0, help="how long to record")
    command.add_argument("--load", action="store_true", help="write on the primary meanwhile")
    command.add_argument("--out", default="lag.png", help="PNG file to write (default lag.png)")


def lag_command(args: argparse.Namespace) -> int:
    return lagview.lag_command(*_given_pair(args), seconds=args.seconds, load=args.load,
                               out=args.out)  # fmt: skip


def pair(args: argparse.Namespace) -> int:
    """A harness-built pair until Ctrl-C, shaped as the plugin would shape it: these
    options, then the ``PGSTANDBY_*`` variables, then the defaults."""
    overrides = {"backend": args.backend, "standbys": args.standbys, "image": args.image}
    if os.environ.get("PGSTANDBY_PRIMARY_DSN") or os.environ.get("PGSTANDBY_STANDBY_DSN"):
        raise ConfigurationError(
            "pgstandby pair brings up a pair of its own, but the environment names servers "
            "it did not start (PGSTANDBY_PRIMARY_DSN / PGSTANDBY_STANDBY_DSN). Fix: unset "
            "them for `pair`, or grade those servers with `pgstandby check --primary DSN "
            "--standby DSN`."
        )
    try:
        settings = from_sources(cli=overrides.get)
    except ConfigurationError as exc:  # in this command's words: --standbys, not pytest's
        raise ConfigurationError(str(exc).replace("--pgstandby-", "--")) from None
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with start_cluster(settings) as cluster, _passfile(cluster.nodes) as passfile:
        print(f"pair is up: {cluster.describe()}")
        for node in cluster.nodes:
            shown = node.dsn if args.show_password else _without_password(node.dsn)
            print(f"  {node.name:10} {shown}   data: {node.data_dir}")
        if not args.show_password:
            print(
                f"passwords: in {passfile} (0600, removed with the pair): connect with "
                f'PGPASSFILE={passfile} psql "<dsn>"; --show-password prints them instead'
            )
        print("Ctrl-C stops and removes it.", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            stop.wait()
    return 0


def _without_password(dsn: str) -> str:
    params = conninfo_to_dict(dsn)
    params.pop("password", None)
    return make_conninfo("", **params)


@contextlib.contextmanager
def _passfile(nodes: list[Node]) -> Iterator[str]:
    """A libpq passfile (0600) with the nodes' passwords, removed at the end: a pair's
    passwords printed in clear land in terminals, scrollback and CI logs."""

    def field(value: object) -> str:
        return str(value).replace("\\", "\\\\").replace(":", "\\:")

    fd, path = tempfile.mkstemp(prefix="pgstandby-pair-", suffix=".pgpass")
    try:
        with os.fdopen(fd, "w") as out:  # mkstemp made it 0600
            for node in nodes:
                p = conninfo_to_dict(node.dsn)
                if p.get("password"):
                    keys = ("host", "port", "dbname", "user", "password")
                    out.write(":".join(field(p.get(k, "*")) for k in keys) + "\n")
        yield path
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


def parser() -> argparse.ArgumentParser:
    head, _, examples = __doc__.partition("\n\n")
    p = argparse.ArgumentParser(
        prog="pgstandby",
        description=head.replace("``", ""),  # the docstring's RST, not for a terminal
        epilog="examples:\n" + examples.rstrip(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="command", required=True)

    image = sub.add_parser("image", help="the lab image").add_subparsers(
        dest="action", required=True
    )
    build = image.add_parser("build", help="build pgstandby/postgres:<pg> with no registry")
    build.add_argument(
        "--pg", type=int, default=15, help="PostgreSQL major: 13, 15 or 17 (default 15)"
    )
    build.add_argument(
        "--suite",
        help="Debian release to build on (default: the one carrying --pg: "
        "bullseye 13, bookworm 15, trixie 17)",
    )
    build.add_argument("--tag", help="image tag (default pgstandby/postgres:<pg>)")
    build.add_argument("--force", action="store_true", help="rebuild even if the tag exists")
    build.set_defaults(func=image_build)

    lab_p = sub.add_parser("lab", help="the classroom docker-compose lab")
    lab_p.set_defaults(func=lab, image=None)
    verbs = lab_p.add_subparsers(dest="action", required=True)
    up = verbs.add_parser("up", help="bring the lab pair up and wait until it streams")
    up.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for streaming")
    verbs.add_parser("down", help="remove the lab (containers, network, volumes)")
    status = verbs.add_parser("status", help="the lab's containers; --watch: live lag")
    status.add_argument("--watch", action="store_true", help="a live table of byte/time lag")
    status.add_argument("--interval", type=float, default=1.0, help="seconds between rows")
    status.add_argument("--count", type=int, default=None, help="stop after N rows")
    lab_check = verbs.add_parser("check", help="grade the lab pair with the assertion helpers")
    lab_check.add_argument(
        "--wait",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="first wait up to SECONDS for every check to pass (a standby that is "
        "reconnecting or re-cloning itself after a fix)",
    )
    verbs.add_parser("doctor", help="the troubleshooting list on the lab pair")
    _add_lag_options(verbs.add_parser("lag", help="record lag for N seconds and draw it (PNG)"))
    walk = verbs.add_parser("walkthrough", help="the procedure one section at a time, proved")
    walk.add_argument("--backend", choices=("docker", "local"), default="docker")
    walk.add_argument("--yes", action="store_true", help="do not wait for Enter")
    exercises.add_parser(verbs)
    for verb in (up, walk):
        verb.add_argument("--image", help=f"image of the servers (default {LAB_IMAGE_DEFAULT})")

    check_p = sub.add_parser("check", help="grade a running pair with the assertion helpers")
    _add_pair_options(check_p)
    check_p.set_defaults(func=check)

    doctor_p = sub.add_parser(
        "doctor", help="the troubleshooting list on a running pair: the first broken step"
    )
    _add_pair_options(doctor_p)
    doctor_p.set_defaults(func=doctor_command)

    lag_p = sub.add_parser("lag", help="record a pair's lag for N seconds and draw it (PNG)")
    _add_pair_options(lag_p)
    _add_lag_options(lag_p)
    lag_p.set_defaults(func=lag_command)

    pair_p = sub.add_parser("pair", help="bring a harness-built pair up until Ctrl-C")
    pair_p.add_argument("--backend", choices=[b for b in BACKENDS if b != "external"], default=None)
    pair_p.add_argument("--standbys", type=int, default=None)
    pair_p.add_argument("--image", default=None)
    pair_p.add_argument(
        "--show-password", action="store_true", help="print the DSNs with their passwords"
    )
    pair_p.set_defaults(func=pair)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    # Ctrl-C stops `pair`, `walkthrough` and `status --watch` with their cleanup, even when
    # started where SIGINT is ignored (a background job of a script)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    args = parser().parse_args(argv)
    try:
        return int(args.func(args))
    except PgStandbyError as exc:
        print(f"pgstandby: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
