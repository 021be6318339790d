#!/bin/bash
# The documented fix of exercise 3 (see TEACHER.md): give the role REPLICATION again.
set -e
# shellcheck source=/dev/null
. "$(dirname "${BASH_SOURCE[0]}")/../common.sh"

on_primary -c "ALTER ROLE $POSTGRES_REPLICATION_USER REPLICATION"
