#!/bin/bash
# Exercise 3's break: the replication role loses REPLICATION on the primary, and the
# standby's connection is cut, so that it must log in again.
set -e
# shellcheck source=/dev/null
. "$(dirname "${BASH_SOURCE[0]}")/../common.sh"

on_primary -c "ALTER ROLE $POSTGRES_REPLICATION_USER NOREPLICATION"
on_primary -c "SELECT pg_terminate_backend(pid) FROM pg_stat_replication" >/dev/null
# PostgreSQL 15: "must be superuser or replication role"; 16+: "permission denied to start WAL sender"
wait_for_standby_log 'replication role to start walsender|permission denied to start WAL sender'
