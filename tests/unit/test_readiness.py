"""What a container node's setup output says outright, read as one line with the fix
(backends/readiness.py); the real failures are provoked in tests/docker/test_bad_input_docker.py.
Here the reading itself, on the output setup-standby.sh prints."""

from __future__ import annotations

from dataclasses import dataclass

from pytest_pgstandby import BaseBackupError
from pytest_pgstandby.backends.readiness import setup_failure

SECTION_1 = (
    "Starting standby setup...\n"
    "postgres-primary-lab:5432 - accepting connections\n"
    "Primary is ready, creating standby from primary...\n"
    "Creating base backup...\n"
)


@dataclass
class Output:
    """A node as far as the reading goes: its name and what its container printed."""

    name: str
    output: str
    dsn: str = ""

    def container_name(self) -> str:
        return f"pgstandby-0123456789-{self.name}"

    def status(self) -> str:
        return "exited"

    def all_output(self) -> str:
        return self.output


def test_no_wal_sender_left_names_max_wal_senders() -> None:
    said = (
        "pg_basebackup: error: could not connect to server: FATAL:  number of requested "
        "standby connections exceeds max_wal_senders (currently 1)"
    )
    failure = setup_failure(Output("standby1", SECTION_1 + said), "img", Output("primary", ""))
    assert isinstance(failure, BaseBackupError)
    assert str(failure).splitlines()[0] == (
        f"standby1 could not be set up: primary has no WAL sender left for its base backup: "
        f"`{said}`. Fix: fewer standbys on primary, or a larger max_wal_senders there "
        "(postgresql.conf, then a restart)."
    )


def test_any_other_pg_basebackup_error_is_quoted_masked() -> None:
    said = 'pg_basebackup: error: could not translate host name "nowhere" password=s3cret'
    failure = setup_failure(Output("standby2", SECTION_1 + said), "img")
    assert failure is not None
    first = str(failure).splitlines()[0]
    assert first.startswith("standby2 could not be set up: pg_basebackup failed: `pg_basebackup")
    assert "s3cret" not in str(failure) and "password=********" in first


def test_output_that_states_no_failure_gives_none() -> None:
    assert (
        setup_failure(Output("standby1", SECTION_1 + "Starting standby server...\n"), "i") is None
    )
