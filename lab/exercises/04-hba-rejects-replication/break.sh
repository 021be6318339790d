#!/bin/bash
# Exercise 4's break: a `reject` line for replication connections goes to the top of the
# primary's pg_hba.conf, above the line setup-primary.sh appended. The first line that
# matches decides; the standby's connection is cut so that it must log in again.
set -e
# shellcheck source=/dev/null
. "$(dirname "${BASH_SOURCE[0]}")/../common.sh"

docker exec -u postgres "$PRIMARY" sed -i \
    "1i host replication $POSTGRES_REPLICATION_USER all reject" "$PGDATA_IN_CONTAINER/pg_hba.conf"
on_primary -c "SELECT pg_reload_conf()" >/dev/null
on_primary -c "SELECT pg_terminate_backend(pid) FROM pg_stat_replication" >/dev/null
wait_for_standby_log 'pg_hba.conf rejects replication connection'
