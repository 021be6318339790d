#!/bin/bash
# The documented fix of exercise 4 (see TEACHER.md): delete the reject line, reload.
set -e
# shellcheck source=/dev/null
. "$(dirname "${BASH_SOURCE[0]}")/../common.sh"

docker exec -u postgres "$PRIMARY" sed -i \
    "/^host replication $POSTGRES_REPLICATION_USER all reject\$/d" "$PGDATA_IN_CONTAINER/pg_hba.conf"
on_primary -c "SELECT pg_reload_conf()" >/dev/null
