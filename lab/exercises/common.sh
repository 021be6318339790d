#!/bin/bash
# Sourced by each exercise's break.sh and fix.sh. The lab's containers are named by the
# same variables as in ../docker-compose.yml, with the same defaults.
set -e

PRIMARY="${PGSTANDBY_LAB_PRIMARY_CONTAINER:-postgres-primary-lab}"
STANDBY="${PGSTANDBY_LAB_STANDBY_CONTAINER:-postgres-standby-lab}"
POSTGRES_REPLICATION_USER="${POSTGRES_REPLICATION_USER:-replicator}"
POSTGRES_REPLICATION_PASSWORD="${POSTGRES_REPLICATION_PASSWORD:-replicator_password}"
export PGDATA_IN_CONTAINER=/var/lib/postgresql/data  # used by the scripts that source this

# psql as postgres over the container's own socket, stopping at the first error
on_primary() { docker exec -u postgres "$PRIMARY" psql -X -q -v ON_ERROR_STOP=1 "$@"; }
on_standby() { docker exec -u postgres "$STANDBY" psql -X -q -v ON_ERROR_STOP=1 "$@"; }

# wait (at most 60 s) until the standby's log shows a line matching $1
wait_for_standby_log() {
    for _ in $(seq 1 600); do
        if docker logs "$STANDBY" 2>&1 | grep -qE "$1"; then
            return 0
        fi
        sleep 0.1
    done
    echo "the standby's log never showed /$1/ in 60 s" >&2
    return 1
}
