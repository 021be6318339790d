"""The values the lab scripts and the servers run with, in each profile: the procedure
takes values, never other steps (docs/profiles.md), and every harness server gets the same
command-line settings."""

from __future__ import annotations

# The lab's replication role, the same in every backend and in lab/docker-compose.yml
# (the hardened profile will replace the password with a random one per run).
REPLICATION_USER = "replicator"


REPLICATION_PASSWORD = "replicator_password"


# The hardened profile's values for the same script steps (docs/profiles.md): the method
# of every line the scripts write, and the password in a passfile rather than in
# primary_conninfo (set but empty, POSTGRES_REPLICATION_PASSWORD lets libpq read it).
HARDENED_METHOD = "scram-sha-256"


HARDENED_PRIMARY_VALUES = {
    "PGSTANDBY_REPLICATION_AUTH_METHOD": HARDENED_METHOD,
    # a scram line needs a SCRAM verifier; PostgreSQL 13 stores md5 by default
    "PGSTANDBY_PASSWORD_ENCRYPTION": HARDENED_METHOD,
}


def server_settings(name: str, slot: str | None = None) -> list[str]:
    """The settings every server the harness starts gets on its command line, as
    ``-c name=value`` arguments (where each backend adds its own: ports, sockets)."""
    settings = {
        # the WAL receiver's application_name: a standby is known upstream by its name
        "cluster_name": name,
        # a spread checkpoint of a test server's few buffers is no slower to write at once;
        # pg_basebackup's initial checkpoint (the seed gives no -c fast) then takes
        # milliseconds, not ~0.4 s of throttling
        "checkpoint_completion_target": "0",
        # pg_rewind needs it on the node it rewinds (or data checksums), as RewindTest.pm
        "wal_log_hints": "on",
    }
    if slot:
        # on the command line, not in postgresql.auto.conf, where a cascaded standby
        # cloned from this one would inherit a slot name that is not its own
        settings["primary_slot_name"] = slot
    return [arg for key, value in settings.items() for arg in ("-c", f"{key}={value}")]


def hardened_standby_values(passfile: str) -> dict[str, str]:
    return {
        "POSTGRES_REPLICATION_PASSWORD": "",
        "PGPASSFILE": passfile,
        "PGSTANDBY_STANDBY_AUTH_METHOD": HARDENED_METHOD,
    }


def passfile_line(user: str, password: str) -> str:
    """A ~/.pgpass line for ``user`` on any host, port and database."""

    def escaped(value: str) -> str:
        return value.replace("\\", "\\\\").replace(":", "\\:")

    return f"*:*:*:{escaped(user)}:{escaped(password)}\n"
