#!/bin/bash
# The documented fix of exercise 1 (see TEACHER.md): clone the standby again, which is
# what restarting its container does (its entrypoint is setup-standby.sh).
set -e
# shellcheck source=/dev/null
. "$(dirname "${BASH_SOURCE[0]}")/../common.sh"

docker restart "$STANDBY" >/dev/null
