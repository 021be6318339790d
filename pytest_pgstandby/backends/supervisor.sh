#!/bin/bash
# PID 1 of every Docker node the harness makes. For a standby, the documented script's
# last step execs this with the seed's start command as arguments (`docker-entrypoint.sh
# postgres -D ...`, a value the backend passes); a primary's container runs it around the
# image's own entrypoint. It runs that server as its child. Once the harness has seen the
# server ready it creates $KEEP_FLAG: from then on, when the harness stops or kills the
# server, the container stays up, and so does its data directory (a tmpfs, gone only with
# the container); start() sends SIGUSR1 and the same command runs again on the same data.
# Before that, a server that exits ends the container (a failed start shows as such).
# A container stop (SIGINT/SIGTERM) stops the server and ends; a container restart of a
# standby reruns the whole script (reclone()). With PGSTANDBY_START_IDLE set it starts
# with no server, kept, and runs the command at the first SIGUSR1 (Cluster.add_node).
set -u

KEEP_FLAG=/tmp/pgstandby-keep
EXITED="pgstandby-supervisor: the server exited"
STARTING="pgstandby-supervisor: starting the server again"
ending=0
wanted=0
idle=""
server=""

run() {
    "$@" &
    server=$!
}
end() {
    ending=1
    kill -INT "$server" 2>/dev/null
    [ -n "$idle" ] && kill "$idle" 2>/dev/null
}
again() {
    wanted=1
    [ -n "$idle" ] && kill "$idle" 2>/dev/null
}
trap end INT TERM
trap again USR1

if [ -n "${PGSTANDBY_START_IDLE:-}" ]; then
    # a node the harness fills first (from a backup): up, no server, until SIGUSR1
    touch "$KEEP_FLAG"
else
    run "$@"
fi
while :; do
    if [ -n "$server" ]; then
        wait "$server"  # returns when the server exits, or when a trapped signal arrives
        status=$?
        if kill -0 "$server" 2>/dev/null; then
            continue
        fi
        [ "$ending" = 1 ] && exit 0
        [ -e "$KEEP_FLAG" ] || exit "$status"
        # the harness's wait for a (re)start reads this line: the server is gone, the
        # container stays
        echo "$EXITED with status $status; the container is kept"
    fi
    while [ "$wanted" = 0 ] && [ "$ending" = 0 ]; do
        sleep infinity &
        idle=$!
        # a signal that came before $idle was known is seen here; a later one kills $idle
        if [ "$wanted" = 0 ] && [ "$ending" = 0 ]; then
            wait "$idle"
        fi
        kill "$idle" 2>/dev/null
        idle=""
    done
    [ "$ending" = 1 ] && exit 0
    wanted=0
    echo "$STARTING"
    run "$@"
done
