#!/bin/bash
# Exercise 5's break: the replication role's password changes on the primary; the standby
# still sends the old one. Its connection is cut so that it must log in again.
set -e
# shellcheck source=/dev/null
. "$(dirname "${BASH_SOURCE[0]}")/../common.sh"

on_primary -c "ALTER ROLE $POSTGRES_REPLICATION_USER PASSWORD 'rotated_password'"
on_primary -c "SELECT pg_terminate_backend(pid) FROM pg_stat_replication" >/dev/null
wait_for_standby_log 'password authentication failed for user'
