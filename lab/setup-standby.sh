#!/bin/bash
# The documented standby procedure (seed 000_693636fd4a1f7349), step by step.
# Every value is read from the environment and defaults to the seed's value; callers
# (the compose lab, the Docker backend, the local backend) may change values only.
set -e

PRIMARY_HOST="${PGSTANDBY_PRIMARY_HOST:-postgres-primary-lab}"
PRIMARY_PORT="${PGSTANDBY_PRIMARY_PORT:-5432}"
READY_USER="${PGSTANDBY_READY_USER:-postgres}"
DATA_DIR="${PGSTANDBY_DATA_DIR:-/var/lib/postgresql/data}"
POLL_INTERVAL="${PGSTANDBY_POLL_INTERVAL:-2}"
START_COMMAND="${PGSTANDBY_START_COMMAND:-docker-entrypoint.sh postgres -D $DATA_DIR}"
POSTGRES_REPLICATION_USER="${POSTGRES_REPLICATION_USER:-replicator}"
# set but empty: no password here, libpq reads the passfile PGPASSFILE names (hardened)
POSTGRES_REPLICATION_PASSWORD="${POSTGRES_REPLICATION_PASSWORD-replicator_password}"
# the method of the lines section 6 writes; the hardened profile passes scram-sha-256
STANDBY_AUTH_METHOD="${PGSTANDBY_STANDBY_AUTH_METHOD:-trust}"

# Section 1: wait for the primary server
echo "Starting standby setup..."

until pg_isready -h "$PRIMARY_HOST" -p "$PRIMARY_PORT" -U "$READY_USER"; do
    echo 'Waiting for primary to be ready...'
    sleep "$POLL_INTERVAL"
done

echo 'Primary is ready, creating standby from primary...'

# Section 2: clean up existing data
rm -rf "${DATA_DIR:?}"/*

# Section 3: create the base backup (-R writes primary_conninfo and standby.signal).
# The seed relies on the default port; -p makes the same port explicit.
echo "Creating base backup..."
PGPASSWORD=$POSTGRES_REPLICATION_PASSWORD pg_basebackup \
    -h "$PRIMARY_HOST" \
    -p "$PRIMARY_PORT" \
    -D "$DATA_DIR" \
    -U "$POSTGRES_REPLICATION_USER" \
    -v -P -R

# Section 4: additional standby configuration
echo "Configuring standby settings..."

cat >> "$DATA_DIR/postgresql.conf" << EOF_CONF

# Standby configuration
primary_conninfo = 'host=$PRIMARY_HOST port=$PRIMARY_PORT user=$POSTGRES_REPLICATION_USER password=$POSTGRES_REPLICATION_PASSWORD'
EOF_CONF

# Section 5: standby signal file
touch "$DATA_DIR/standby.signal"

# Section 6: authentication configuration (pg_hba.conf)
if [ ! -f "$DATA_DIR/pg_hba.conf" ]; then
    echo "Creating pg_hba.conf"
    cat > "$DATA_DIR/pg_hba.conf" << EOF_HBA
# PostgreSQL Client Authentication Configuration File
# TYPE  DATABASE        USER            ADDRESS                 METHOD
local   all             all                                     $STANDBY_AUTH_METHOD
host    all             all             127.0.0.1/32            $STANDBY_AUTH_METHOD
host    all             all             ::1/128                 $STANDBY_AUTH_METHOD
host    replication     all             0.0.0.0/0                $STANDBY_AUTH_METHOD
host    all             all             0.0.0.0/0                $STANDBY_AUTH_METHOD
EOF_HBA
else
    echo "host all all 0.0.0.0/0 $STANDBY_AUTH_METHOD" >> "$DATA_DIR/pg_hba.conf"
    echo "host replication all 0.0.0.0/0 $STANDBY_AUTH_METHOD" >> "$DATA_DIR/pg_hba.conf"
fi

# Section 7: start PostgreSQL in standby mode
echo "Starting standby server..."
# eval so that a start command may carry quoted paths and redirections
eval "exec $START_COMMAND"
