#!/bin/bash
# The documented fix of exercise 2 (see TEACHER.md): drop the ALTER SYSTEM value, so that
# the primary_conninfo setup-standby.sh wrote (section 4, postgresql.conf) applies again.
set -e
# shellcheck source=/dev/null
. "$(dirname "${BASH_SOURCE[0]}")/../common.sh"

on_standby -c "ALTER SYSTEM RESET primary_conninfo"
on_standby -c "SELECT pg_reload_conf()" >/dev/null
