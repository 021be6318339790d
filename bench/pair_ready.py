"""Nothing to a streaming pair: the harness's local backend against the seed's commands
typed as a plain shell script (initdb, pg_ctl start, the replication role, the documented
pg_basebackup -v -P -R, the appended primary_conninfo, standby.signal, the pg_hba lines,
pg_ctl start) in the default temp dir, and, when the optional `bench` extra is installed,
testgres (init, backup, spawn_replica, catchup; in the default temp dir, run as the
servers' account since testgres refuses root), alternating rounds in one run. Prints min /
median / max and the ratio of medians, writes JSON.

    python bench/pair_ready.py --rounds 7 --json bench/results/pair_ready.json
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _report import report  # bench/ is the script's own directory

from pytest_pgstandby import Settings, binaries, start_cluster
from pytest_pgstandby.backends.accounts import binaries_for, run_account
from pytest_pgstandby.backends.ports import free_port

# The seed's steps as a user would type them (values only: 127.0.0.1 and free ports).
SEED_SCRIPT = "\n".join(
    [
        "set -e",
        "initdb -D primary --username=postgres --auth=trust --no-sync -E UTF8 --locale=C"
        " >/dev/null",
        'pg_ctl -D primary -l primary.log -o "-p {p1} {opts}" -w start >/dev/null',
        "psql -h 127.0.0.1 -p {p1} -U postgres -qc"
        " \"CREATE ROLE replicator WITH REPLICATION LOGIN PASSWORD 'replicator_password'\"",
        "PGPASSWORD=replicator_password pg_basebackup -h 127.0.0.1 -p {p1} -D standby"
        " -U replicator -v -P -R 2>/dev/null",
        "printf '\\n# Standby configuration\\nprimary_conninfo = %s\\n'"
        " \"'host=127.0.0.1 port={p1} user=replicator password=replicator_password'\""
        " >> standby/postgresql.conf",
        "touch standby/standby.signal",
        'echo "host all all 0.0.0.0/0 trust" >> standby/pg_hba.conf',
        'echo "host replication all 0.0.0.0/0 trust" >> standby/pg_hba.conf',
        'pg_ctl -D standby -l standby.log -o "-p {p2} {opts}" -w start >/dev/null',
        'until [ "$(psql -h 127.0.0.1 -p {p2} -U postgres -Atc'
        " 'SELECT status FROM pg_stat_wal_receiver')\" = streaming ]; do :; done",
    ]
)


def by_hand(bindir: Path) -> float:
    account = run_account()
    root = Path(tempfile.mkdtemp(prefix="seed-pair-"))
    account.chown(root)
    p1, p2 = free_port(), free_port()
    opts = f"-c listen_addresses=127.0.0.1 -k {root}"
    env = {"PATH": f"{bindir}:/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": str(root)}

    def run(script: str) -> None:
        subprocess.run(
            ["/bin/bash", "-c", script],
            cwd=root,
            env=env,
            check=True,
            timeout=300,
            **account.popen_kwargs(),
        )

    try:
        started = time.perf_counter()
        run(SEED_SCRIPT.format(p1=p1, p2=p2, opts=opts))
        return time.perf_counter() - started
    finally:
        for node in ("standby", "primary"):
            if (root / node / "postmaster.pid").exists():
                run(f"pg_ctl -D {node} stop -m immediate -w >/dev/null")
        shutil.rmtree(root, ignore_errors=True)


TESTGRES = """
import time, testgres
started = time.perf_counter()
with testgres.get_new_node() as primary:
    primary.init(allow_streaming=True).start()
    with primary.backup() as backup, backup.spawn_replica("replica").start() as replica:
        replica.catchup()
        print(time.perf_counter() - started)
"""


def with_testgres(bindir: Path) -> float | None:
    """Seconds to a caught-up testgres replica, timed inside its own process (not the
    interpreter's start); None when testgres is not installed."""
    try:
        import testgres  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        return None
    site = str(Path(testgres.__file__).resolve().parents[1])
    account = run_account()
    # as root, the servers' account runs the system python with this one's packages
    python = "/usr/bin/python3" if os.getuid() == 0 else sys.executable
    env = {"PG_BIN": str(bindir), "PYTHONPATH": site, "HOME": tempfile.gettempdir()}
    out = subprocess.run(
        [python, "-c", TESTGRES],
        env={**env, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
        **account.popen_kwargs(),
    )
    return float(out.stdout.split()[-1])


def harness(settings: Settings) -> float:
    started = time.perf_counter()
    with start_cluster(settings):
        return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--json", default="bench/results/pair_ready.json")
    args = parser.parse_args()
    settings = Settings(backend="local")
    bindir = binaries_for(binaries.find(None), run_account()).bindir
    times: dict[str, list[float]] = {"harness": [], "seed by hand": [], "testgres": []}
    for _ in range(args.rounds):
        times["harness"].append(harness(settings))
        times["seed by hand"].append(by_hand(bindir))
        took = with_testgres(bindir)
        if took is not None:
            times["testgres"].append(took)
    if not times["testgres"]:
        print("testgres: not installed (pip install -e '.[bench]'); left out")
        del times["testgres"]
    report(
        times,
        ("harness", "seed by hand"),
        args.json,
        f"vm: {platform.machine()}, rounds={args.rounds}, temp dir {tempfile.gettempdir()}",
        against_all=True,
    )


if __name__ == "__main__":
    main()
