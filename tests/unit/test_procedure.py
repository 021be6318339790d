"""lab/setup-standby.sh keeps the seed's seven steps, in the seed's order, with the
seed's commands, flags and default values (the seed is docs/procedure.md's source)."""

from __future__ import annotations

import re

from pytest_pgstandby.labfiles import lab_file

SEVEN_STEPS = [
    r'until pg_isready -h "\$PRIMARY_HOST" -p "\$PRIMARY_PORT" -U "\$READY_USER"; do',
    r'rm -rf "\$\{DATA_DIR:\?\}"/\*',
    r"PGPASSWORD=\$POSTGRES_REPLICATION_PASSWORD pg_basebackup \\",
    r'cat >> "\$DATA_DIR/postgresql.conf" << EOF_CONF',
    r'touch "\$DATA_DIR/standby.signal"',
    r'if \[ ! -f "\$DATA_DIR/pg_hba.conf" \]; then',
    r'eval "exec \$START_COMMAND"',
]
SEED_DEFAULTS = {
    "PGSTANDBY_PRIMARY_HOST": "postgres-primary-lab",
    "PGSTANDBY_PRIMARY_PORT": "5432",
    "PGSTANDBY_READY_USER": "postgres",
    "PGSTANDBY_DATA_DIR": "/var/lib/postgresql/data",
    "PGSTANDBY_POLL_INTERVAL": "2",
    "PGSTANDBY_START_COMMAND": "docker-entrypoint.sh postgres -D $DATA_DIR",
}


def _code_lines() -> list[str]:
    text = lab_file("setup-standby.sh").read_text()
    return [
        line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")
    ]


def test_the_seven_steps_appear_once_each_in_the_seed_order() -> None:
    lines = _code_lines()
    positions = []
    for step in SEVEN_STEPS:
        hits = [i for i, line in enumerate(lines) if re.search(step, line)]
        assert len(hits) == 1, f"step {step!r} found {len(hits)} times"
        positions.append(hits[0])
    assert positions == sorted(positions)
    assert lines[0] == "set -e"


def test_basebackup_keeps_the_seed_flags() -> None:
    text = lab_file("setup-standby.sh").read_text()
    call = text[text.index("pg_basebackup \\") : text.index("-v -P -R") + len("-v -P -R")]
    for flag in ('-h "$PRIMARY_HOST"', '-D "$DATA_DIR"', '-U "$POSTGRES_REPLICATION_USER"'):
        assert flag in call


def test_every_value_defaults_to_the_seed() -> None:
    text = lab_file("setup-standby.sh").read_text()
    for var, default in SEED_DEFAULTS.items():
        assert f'"${{{var}:-{default}}}"' in text, var


def test_the_appended_block_and_hba_lines_are_the_seed_text() -> None:
    text = lab_file("setup-standby.sh").read_text()
    assert (
        "# Standby configuration\nprimary_conninfo = 'host=$PRIMARY_HOST port=$PRIMARY_PORT "
        "user=$POSTGRES_REPLICATION_USER password=$POSTGRES_REPLICATION_PASSWORD'"
    ) in text
    # the seed's lines, their method a value (trust by default; hardened: scram-sha-256)
    method = "$STANDBY_AUTH_METHOD"
    assert f'echo "host all all 0.0.0.0/0 {method}" >> "$DATA_DIR/pg_hba.conf"' in text
    assert f'echo "host replication all 0.0.0.0/0 {method}" >> "$DATA_DIR/pg_hba.conf"' in text
    assert 'STANDBY_AUTH_METHOD="${PGSTANDBY_STANDBY_AUTH_METHOD:-trust}"' in text
