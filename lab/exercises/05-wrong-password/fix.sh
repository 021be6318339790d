#!/bin/bash
# The documented fix of exercise 5 (see TEACHER.md): the standby learns the new password.
set -e
# shellcheck source=/dev/null
. "$(dirname "${BASH_SOURCE[0]}")/../common.sh"

on_standby -c "ALTER SYSTEM SET primary_conninfo = 'host=postgres-primary-lab port=5432 user=$POSTGRES_REPLICATION_USER password=rotated_password'"
on_standby -c "SELECT pg_reload_conf()" >/dev/null
