#!/bin/bash
# Exercise 2's break: someone "fixed" the standby's connection string with ALTER SYSTEM and
# a short name that no container has. ALTER SYSTEM writes postgresql.auto.conf, which wins
# over the line setup-standby.sh appended to postgresql.conf (section 4).
set -e
# shellcheck source=/dev/null
. "$(dirname "${BASH_SOURCE[0]}")/../common.sh"

on_standby -c "ALTER SYSTEM SET primary_conninfo = 'host=postgres-primary port=5432 user=$POSTGRES_REPLICATION_USER password=$POSTGRES_REPLICATION_PASSWORD'"
on_standby -c "SELECT pg_reload_conf()" >/dev/null
wait_for_standby_log 'could not translate host name "postgres-primary"'
