#!/bin/bash
# Exercise 6's break: the standby is kept from connecting while the primary writes,
# switches WAL segments and checkpoints; without a replication slot (or wal_keep_size) the
# primary removes the segments the standby still needs. Then the standby may log in again.
set -e
# shellcheck source=/dev/null
. "$(dirname "${BASH_SOURCE[0]}")/../common.sh"

on_primary -c "ALTER ROLE $POSTGRES_REPLICATION_USER NOLOGIN"
on_primary -c "SELECT pg_terminate_backend(pid) FROM pg_stat_replication" >/dev/null
on_primary -c "CREATE TABLE IF NOT EXISTS exercise_churn (filler text)"
for _ in 1 2 3; do
    on_primary -c "INSERT INTO exercise_churn SELECT repeat('x', 100) FROM generate_series(1, 1000)"
    on_primary -c "SELECT pg_switch_wal()" >/dev/null
    on_primary -c "CHECKPOINT"
done
on_primary -c "ALTER ROLE $POSTGRES_REPLICATION_USER LOGIN"
wait_for_standby_log 'requested WAL segment [0-9A-F]+ has already been removed'
