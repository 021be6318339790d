#!/bin/bash
# Prepares the primary for the documented standby procedure: a replication role and a
# pg_hba.conf line that lets it connect for replication. Idempotent. Runs from
# /docker-entrypoint-initdb.d/ in a container (temporary server on the socket) and from
# the local backend right after initdb (PGHOST/PGPORT point at the new server).
set -e

POSTGRES_REPLICATION_USER="${POSTGRES_REPLICATION_USER:-replicator}"
POSTGRES_REPLICATION_PASSWORD="${POSTGRES_REPLICATION_PASSWORD:-replicator_password}"
REPLICATION_AUTH_METHOD="${PGSTANDBY_REPLICATION_AUTH_METHOD:-md5}"
REPLICATION_ADDRESS="${PGSTANDBY_REPLICATION_ADDRESS:-all}"
PGDATA="${PGDATA:-/var/lib/postgresql/data}"
# How the role's password is stored. Empty: the server's password_encryption (md5 up to
# PostgreSQL 13, scram-sha-256 from 14). A scram-sha-256 line needs a SCRAM verifier, so
# the hardened profile passes scram-sha-256 (docs/profiles.md).
PASSWORD_ENCRYPTION="${PGSTANDBY_PASSWORD_ENCRYPTION:-}"

echo "Creating replication role $POSTGRES_REPLICATION_USER..."
# The password travels in the environment (PGOPTIONS, read as a setting of this session),
# not on psql's command line, which `ps` shows every account on the machine.
PGOPTIONS="-c pgstandby.repl_password=${POSTGRES_REPLICATION_PASSWORD// /\\ }${PASSWORD_ENCRYPTION:+ -c password_encryption=$PASSWORD_ENCRYPTION}" \
psql -v ON_ERROR_STOP=1 --no-psqlrc \
    --username "${POSTGRES_USER:-postgres}" --dbname "${POSTGRES_DB:-postgres}" \
    -v repl_user="$POSTGRES_REPLICATION_USER" <<'EOSQL'
SELECT format('CREATE ROLE %I WITH REPLICATION LOGIN PASSWORD %L', :'repl_user',
              current_setting('pgstandby.repl_password'))
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'repl_user')
\gexec
SELECT format('ALTER ROLE %I WITH REPLICATION LOGIN PASSWORD %L', :'repl_user',
              current_setting('pgstandby.repl_password'))
\gexec
EOSQL

HBA_LINE="host replication $POSTGRES_REPLICATION_USER $REPLICATION_ADDRESS $REPLICATION_AUTH_METHOD"
if ! grep -qxF "$HBA_LINE" "$PGDATA/pg_hba.conf"; then
    echo "$HBA_LINE" >> "$PGDATA/pg_hba.conf"
fi
psql -v ON_ERROR_STOP=1 --no-psqlrc --quiet \
    --username "${POSTGRES_USER:-postgres}" --dbname "${POSTGRES_DB:-postgres}" \
    -c 'SELECT pg_reload_conf()' >/dev/null
echo "Replication role $POSTGRES_REPLICATION_USER is ready."
