from __future__ import annotations

import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import pytest

from pytest_pgstandby import Cluster, Settings, binaries, start_cluster
from pytest_pgstandby.backends.accounts import binaries_for, run_account
from pytest_pgstandby.backends.ports import free_port

LOCAL_PASSWORD = "replicator_password"  # what the hand-built pair's standby carries


@pytest.fixture(scope="module")
def pair(pgstandby_settings) -> Iterator[Cluster]:  # type: ignore[no-untyped-def]
    with start_cluster(pgstandby_settings, backend="local", standbys=1) as cluster:
        yield cluster


# a pair built by hand, without the harness --------------------------------------------


def _as_server_account(script: str, cwd: Path, bindir: Path) -> None:
    account = run_account()
    env = {"PATH": f"{bindir}:/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": str(cwd)}
    result = subprocess.run(
        ["/bin/bash", "-c", script],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        **account.popen_kwargs(),
    )
    assert result.returncode == 0, f"{script}\n{result.stdout}\n{result.stderr}"


@pytest.fixture
def hand_built_pair(pgstandby_settings: Settings) -> Iterator[tuple[str, str, Path]]:
    """The seed's commands typed by hand (values only changed: 127.0.0.1 and free ports)."""
    # the binaries as the server account can run them (a shared copy of pip-installed ones)
    bindir = binaries_for(binaries.find(pgstandby_settings.pg_bin), run_account()).bindir
    root = Path(tempfile.mkdtemp(prefix="handbuilt-pair-"))
    run_account().chown(root)
    p1, p2 = free_port(), free_port()
    opts = f"-c listen_addresses=127.0.0.1 -k {shlex.quote(str(root))}"
    conninfo = f"host=127.0.0.1 port={p1} user=replicator password={LOCAL_PASSWORD}"
    try:
        _as_server_account(
            f"""set -e
            initdb -D primary --username=postgres --auth=trust --no-sync -E UTF8 --locale=C
            pg_ctl -D primary -l primary.log -o "-p {p1} {opts}" -w start
            psql -h 127.0.0.1 -p {p1} -U postgres -v ON_ERROR_STOP=1 -c \\
                "CREATE ROLE replicator WITH REPLICATION LOGIN PASSWORD 'replicator_password'"
            PGPASSWORD=replicator_password pg_basebackup -h 127.0.0.1 -p {p1} -D standby \\
                -U replicator -v -P -R
            cat >> standby/postgresql.conf << EOF

            # Standby configuration
            primary_conninfo = '{conninfo}'
            EOF
            touch standby/standby.signal
            echo "host all all 0.0.0.0/0 trust" >> standby/pg_hba.conf
            echo "host replication all 0.0.0.0/0 trust" >> standby/pg_hba.conf
            pg_ctl -D standby -l standby.log -o "-p {p2} {opts}" -w start
            """.replace("\n            ", "\n"),
            root,
            bindir,
        )
        yield (
            f"host=127.0.0.1 port={p1} user=postgres dbname=postgres",
            f"host=127.0.0.1 port={p2} user=postgres dbname=postgres",
            root / "standby",
        )
    finally:
        for node in ("standby", "primary"):
            if (root / node / "postmaster.pid").exists():
                _as_server_account(f"pg_ctl -D {node} stop -m fast -w", root, bindir)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def make_cluster(pgstandby_settings: Settings):  # type: ignore[no-untyped-def]
    """A cluster of its own for a scenario: ``with make_cluster(standbys=2) as c: ...``."""

    def make(**settings: Any) -> AbstractContextManager[Cluster]:
        return start_cluster(pgstandby_settings, backend="local", **settings)

    return make
