"""``pgstandby doctor``: the seed's troubleshooting list, automated, in the seed's order. Each
step looks at the running pair; the report names the first broken step, its evidence and
its fix.

>>> for step in diagnose(primary, standby): print(step)       # doctest: +SKIP
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass

import psycopg
from psycopg.conninfo import make_conninfo

from ..assertions import assert_primary_conninfo, assert_standby_signal
from ..assertions.conninfo import parse_conninfo, read_conninfo
from ..assertions.report import error_text
from ..backends.base import CONTAINER_PGDATA, LOOPBACK
from ..diagnosis import BASEBACKUP_ERROR, HBA_REFUSAL, WAL_FAILURES
from ..errors import PgStandbyError
from ..node import Node, ServerLike, as_node

_ROLE_PROBLEM = re.compile(r"on the primary lacks|does not exist on the primary")


@dataclass(frozen=True)
class Step:
    name: str
    ok: bool
    evidence: str
    fix: str = ""

    def __str__(self) -> str:
        head = f"{'ok    ' if self.ok else 'BROKEN'}  {self.name}: {self.evidence}"
        return head + (f"\n        fix: {self.fix}" if self.fix else "")


def diagnose(primary: ServerLike, standby: ServerLike) -> list[Step]:
    """Every step's finding, in order."""
    p, s = as_node(primary, role="primary"), as_node(standby, role="standby")
    steps: list[Callable[[Node, Node, Seen], Step]] = [
        _primary_ready,
        _data_directory,
        _base_backup,
        _standby_signal,
        _primary_conninfo,
        _network,
        _authentication,
        _wal_available,
        _streaming,
    ]
    once = Seen(s)
    return [_checked(step, p, s, once) for step in steps]


def _checked(step: Callable[[Node, Node, Seen], Step], p: Node, s: Node, seen: Seen) -> Step:
    """A step whose server does not answer (a standby that exited) is reported as not
    checked, not raised: the steps before it, the data directory's above all, say why."""
    try:
        return step(p, s, seen)
    except (psycopg.Error, PgStandbyError, OSError) as exc:
        return Step(
            step.__name__.lstrip("_").replace("_", " "), False,
            f"not checked: {error_text(exc)}",
            "the server this step reads does not answer: fix the first broken step above, "
            "and read its log (docker logs)",
        )  # fmt: skip


class Seen:
    """What several steps look at on the standby, read once per diagnosis (its output is
    `docker logs` for a container: not worth fetching three times)."""

    def __init__(self, s: Node) -> None:
        self.s = s

    @functools.cached_property
    def output(self) -> str:
        """The standby's setup output and log."""
        try:
            return self.s.setup_output() + self.s.log()
        except OSError:
            return ""

    @functools.cached_property
    def conninfo(self) -> dict[str, str]:
        """The effective primary_conninfo's parameters ({} when it is empty)."""
        with self.s.connect(connect_timeout=3) as conn:
            effective = read_conninfo(self.s, conn).effective or ""
        return parse_conninfo(effective) if effective.strip() else {}


def _primary_ready(p: Node, s: Node, standby: Seen) -> Step:
    name = "primary is ready"
    try:
        p.execute("SELECT 1", connect_timeout=3)
    except psycopg.Error as exc:
        return Step(
            name, False, f"{p.label} does not accept connections: {error_text(exc)}",
            "start the primary (docker start / pg_ctl start) and check its log; the standby "
            "waits for it with pg_isready",
        )  # fmt: skip
    return Step(name, True, f"{p.label} accepts connections")


#: where the procedure writes (setup-standby.sh's DATA_DIR, the seed's value) and where the
#: lab keeps its volumes
PROCEDURE_DATA_DIR = CONTAINER_PGDATA


def _data_directory(p: Node, s: Node, standby: Seen) -> Step:
    """Servers in containers run from the directory the procedure wrote: an image that moved
    PGDATA (postgres:18: /var/lib/postgresql/18/docker) in a container that did not pin it
    runs a server that never reads those files, or keeps its own off the volume. Only a
    server in a container has a known directory; for any other the step is not checked."""
    name = "data directory"
    inside = [node for node in (p, s) if node.container_name() is not None]
    if not inside:
        return Step(
            name, True, "not checked: neither server is in a container (Server(dsn, "
            "container=...)), where the directory the procedure wrote is known",
        )  # fmt: skip
    seen: list[str] = []
    elsewhere: list[tuple[str, str]] = []  # (what the server shows, where it should run)
    for node in inside:
        found, where = _runs_from(node)
        expected = _written_dir(node)
        if where is not None and where != expected:
            elsewhere.append((found, expected))
        else:
            seen.append(found)
    if not elsewhere:
        return Step(name, True, "; ".join(seen))
    dirs = sorted({expected for _, expected in elsewhere})
    if len(dirs) == 1:
        shown = f"{'; '.join(found for found, _ in elsewhere)}, not {dirs[0]}"
    else:
        shown = "; ".join(f"{found}, not {expected}" for found, expected in elsewhere)
    if dirs != [PROCEDURE_DATA_DIR]:  # a directory given for the server (--standby-data-dir)
        return Step(
            name, False, f"{shown}, the directory given for it, where the procedure wrote",
            "give the doctor the directory the server runs from (Server(dsn, data_dir=...)); "
            "or, if the procedure wrote the one given, set PGDATA to it in the container's "
            "environment",
        )  # fmt: skip
    return Step(
        name, False,
        f"{shown} where the procedure writes (standby.signal, pg_hba.conf) and the lab keeps "
        "its volumes: the image moved PGDATA (postgres:18 uses /var/lib/postgresql/18/docker) "
        "and nothing pinned it",
        f"set PGDATA={PROCEDURE_DATA_DIR} in the containers' environment "
        "(lab/docker-compose.yml pins it), then `pgstandby lab down` and `lab up`; or give "
        "the procedure that directory (PGSTANDBY_DATA_DIR)",
    )  # fmt: skip


def _written_dir(node: Node) -> str:
    """The directory the procedure wrote for a server in a container: the one given for it
    (the harness's pinned PGDATA, Server(dsn, data_dir=...)), else the lab's."""
    return node.given_data_dir or PROCEDURE_DATA_DIR


def _runs_from(node: Node) -> tuple[str, str | None]:
    """What a server in a container shows of its data directory, and that directory; a
    server that does not show it (it exited, or the role may not read data_directory) is
    judged by its container's PGDATA, where the image's entrypoint prepares and initdbs."""
    container = str(node.container_name())
    try:
        where = str(node.query_value("SHOW data_directory", connect_timeout=3))
        return f"{container} runs from {where}", where
    except psycopg.OperationalError:
        why = "does not answer"
    except psycopg.Error:
        why = "does not show its data_directory to this role"
    from ..backends.containers import container_env, find_container

    try:
        env = container_env(find_container(container), "PGDATA")
    except PgStandbyError:
        env = None
    if env is None:
        return f"{container} {why}: not checked", None
    return f"{container} {why}, and its environment sets PGDATA={env}", env


def _base_backup(p: Node, s: Node, standby: Seen) -> Step:
    name = "base backup"
    text = standby.output
    errors = BASEBACKUP_ERROR.findall(text)
    if errors:
        return Step(
            name, False, f"the standby's output has `{errors[-1]}`", _backup_fix(errors[-1])
        )
    if "pg_basebackup: base backup completed" in text:
        return Step(name, True, "pg_basebackup: base backup completed")
    return Step(name, True, "no pg_basebackup error in what the standby's output shows")


def _backup_fix(error: str) -> str:
    if "password authentication failed" in error:
        return (
            "the replication password the standby uses is not the role's: make "
            "POSTGRES_REPLICATION_PASSWORD the same on both sides, then restart the standby"
        )
    if "no pg_hba.conf entry for replication connection" in error:
        return (
            "the primary's pg_hba.conf admits no replication connection from the standby: add "
            "`host replication replicator all md5` (lab/setup-primary.sh does) and reload"
        )
    if "must be superuser or replication role" in error or "permission denied" in error:
        return "give the role REPLICATION: ALTER ROLE replicator WITH REPLICATION LOGIN"
    if "could not translate host name" in error or "Connection refused" in error:
        return "the standby cannot reach the primary's host and port: check PRIMARY_HOST/PORT"
    return "read the standby's full output (docker logs) around that line"


def _standby_signal(p: Node, s: Node, standby: Seen) -> Step:
    name = "standby.signal exists"
    try:
        assert_standby_signal(s)
    except AssertionError as exc:
        # the assertion's fix tells a missing file from a server that ran as a primary
        fix = _fix_of(exc) or (
            "touch standby.signal in the data directory, then restart the standby "
            "(setup-standby.sh step 5)"
        )
        return Step(name, False, _first_line(exc), fix)
    return Step(name, True, f"{s.file_location('standby.signal')} and pg_is_in_recovery()")


def _primary_conninfo(p: Node, s: Node, standby: Seen) -> Step:
    name = "primary_conninfo"
    try:
        assert_primary_conninfo(s, p)
    except AssertionError as exc:
        problems = [ln.strip()[2:] for ln in str(exc).splitlines() if ln.strip().startswith("- ")]
        about_the_role = [ln for ln in problems if _ROLE_PROBLEM.search(ln)]
        if not problems or len(about_the_role) < len(problems):
            return Step(name, False, _first_line(exc), _fix_of(exc))
        # the conninfo itself is right; the role it names is the authentication step's
    return Step(name, True, "points at the primary")


def _network(p: Node, s: Node, standby: Seen) -> Step:
    """The seed's `ping postgres-primary-lab`, without ping: from the standby's side,
    resolve the host of its effective primary_conninfo and probe the port."""
    name = "primary reachable from the standby"
    params = standby.conninfo
    host = params.get("host") or params.get("hostaddr") or ""
    if not host or host.startswith("/"):
        return Step(name, True, f"primary_conninfo names {host or 'no host'}: nothing to probe")
    port = int(params.get("port") or 5432)
    reach = s.reach(host, port)
    seen = f"from {reach.where}, {host} is {', '.join(reach.addresses) or 'unresolved'}"
    if reach.reachable:
        return Step(name, True, f"{seen}; {reach.evidence}")
    if s.container_name() is None and not s.owned and not s.data_dir:
        return Step(name, True, "not probed from the standby's side (it was given by a DSN "
                    f"only: give --standby-container NAME); here: {reach.evidence}")  # fmt: skip
    if not reach.addresses:
        return Step(name, False, f"{seen}: {reach.evidence}", _UNRESOLVED_FIX)
    return Step(name, False, f"{seen} but nothing answers on port {port}: {reach.evidence}",
                _UNREACHED_FIX)  # fmt: skip


_UNRESOLVED_FIX = (
    "primary_conninfo's host must be a name the standby resolves: the primary's container "
    "or service name on the same Docker network (the seed's postgres-primary-lab), or its "
    "address"
)
_UNREACHED_FIX = (
    "check that the primary runs and listens on that port (listen_addresses, the port in "
    "primary_conninfo), and that nothing filters the traffic between them"
)


def _authentication(p: Node, s: Node, standby: Seen) -> Step:
    """The role in primary_conninfo may replicate, a pg_hba.conf line admits it, and its
    password logs in (a replication connection from here, as the standby would open)."""
    name = "authentication"
    params = standby.conninfo
    user = params.get("user", "")
    row = p.execute("SELECT rolreplication, rolcanlogin FROM pg_roles WHERE rolname = %s", [user])
    if not row or not all(row[0]):
        seen = "does not exist" if not row else f"has REPLICATION={row[0][0]}, LOGIN={row[0][1]}"
        return Step(name, False, f"role {user!r} (primary_conninfo's user) {seen} on the primary",
                    f"CREATE/ALTER ROLE {user} WITH REPLICATION LOGIN PASSWORD '...' on the "
                    "primary (lab/setup-primary.sh does)")  # fmt: skip
    rules = p.execute(
        "SELECT line_number, type, database, user_name, auth_method, address "
        "FROM pg_hba_file_rules WHERE error IS NULL AND 'replication' = ANY(database) "
        "AND (user_name && ARRAY['all', %s]) AND type LIKE 'host%%' ORDER BY line_number",
        [user],
    )
    # a loopback-only line admits a standby only when it reaches the primary by loopback
    by_loopback = params.get("host", "") in LOOPBACK
    hba = [r for r in rules if by_loopback or r[5] not in ("127.0.0.1", "::1")]
    if not hba:
        return Step(name, False, f"no pg_hba.conf line on the primary admits replication "
                    f"connections of {user!r} over TCP",
                    f"append `host replication {user} all md5` to the primary's pg_hba.conf, then "
                    "SELECT pg_reload_conf()")  # fmt: skip
    line = hba[0]
    shown = f"{line[1]} replication {','.join(line[3])} {line[5] or ''} {line[4]}"
    if line[4] == "reject":
        return Step(name, False, f"the first pg_hba.conf line on the primary that matches "
                    f"replication connections of {user!r} is line {line[0]} ({shown}): the "
                    "first matching line decides, and it rejects",
                    f"delete line {line[0]} of the primary's pg_hba.conf (or move it below the "
                    "line that admits the standby), then SELECT pg_reload_conf()")  # fmt: skip
    refused = HBA_REFUSAL.findall(standby.output)
    if refused and not _streams(s):
        return Step(name, False, f"the standby's log has `{refused[-1]}`",
                    f"add a line admitting it (`host replication {user} all md5`) above any "
                    "line that rejects it in the primary's pg_hba.conf, then SELECT "
                    "pg_reload_conf()")  # fmt: skip
    try:
        login = {k: v for k, v in params.items() if k in ("user", "password")}
        dsn = make_conninfo(host=p.host, port=p.port, replication="true", **login)
        psycopg.connect(dsn, connect_timeout=3).close()
    except psycopg.Error as exc:
        text = error_text(exc)
        if "password authentication failed" in text:
            return Step(name, False, f"the password in primary_conninfo is refused: {text}",
                        "make the password in the standby's primary_conninfo the role's "
                        "(POSTGRES_REPLICATION_PASSWORD on both sides), then SELECT "
                        "pg_reload_conf() on the standby (13+; before, restart)")  # fmt: skip
    return Step(name, True, f"{user!r} has REPLICATION; pg_hba.conf line {line[0]} ({shown}) "
                "admits it")  # fmt: skip


def _wal_available(p: Node, s: Node, standby: Seen) -> Step:
    name = "WAL still available"
    text = standby.output
    if not _streams(s):
        lost = p.lost_slot_reason(s)
        if lost is not None:
            reason, fix = lost.split(" Fix: ", 1)
            return Step(name, False, reason, fix)
        for pattern, meaning, fix in WAL_FAILURES:
            found = pattern.findall(text)
            if found:
                return Step(name, False, f"{meaning}: `{found[-1]}`", fix)
    return Step(name, True, "the standby's log reports no removed WAL segment or lost slot")


def _streaming(p: Node, s: Node, standby: Seen) -> Step:
    name = "streaming"
    row = s.execute("SELECT status, sender_host, sender_port FROM pg_stat_wal_receiver")
    if row and row[0][0] == "streaming":
        return Step(name, True, f"WAL receiver streaming from {row[0][1]}:{row[0][2]}")
    return Step(name, False, f"pg_stat_wal_receiver: {row[0] if row else 'no WAL receiver'}",
                "see the standby's log for the WAL receiver's error")  # fmt: skip


def _streams(s: Node) -> bool:
    return bool(s.query_value("SELECT status FROM pg_stat_wal_receiver") == "streaming")


def _first_line(exc: BaseException) -> str:
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip().startswith("- ")]
    return lines[0][2:] if lines else str(exc).splitlines()[0]


def _fix_of(exc: BaseException) -> str:
    fixes = [ln.strip()[5:] for ln in str(exc).splitlines() if ln.strip().startswith("fix: ")]
    return fixes[0] if fixes else ""


def report(steps: list[Step]) -> tuple[str, int]:
    """The printed diagnosis and the exit status (0: nothing broken)."""
    lines = [str(step) for step in steps]
    broken = next((step for step in steps if not step.ok), None)
    if broken is None:
        lines.append("nothing broken: the standby streams as the procedure intends")
        return "\n".join(lines), 0
    lines.append(f"first broken step: {broken.name}")
    return "\n".join(lines), 1
