#!/bin/bash
# The entrypoint of a snapshot's copy on Docker (docker_snapshot.py): at the container's
# first start it unpacks the data directory the harness copied in (into PGDATA, a tmpfs
# that exists only once the container runs), then starts the server as the original's
# last start did: a primary's entrypoint (which finds the data and skips initdb), or a
# standby's start command once its upstream accepts connections (setup-standby.sh's
# section 1, whose wait this repeats; its clone is what the archive holds). Any later
# start (a standby's reclone restarts its container) runs the node's own entrypoint,
# given as the arguments: setup-standby.sh then clones anew, as the seed's restart does.
set -euo pipefail
ARCHIVE=/pgstandby-restore.tgz

if [ ! -f "$ARCHIVE" ]; then
    exec "$@"
fi
tar -xzf "$ARCHIVE" -C "$(dirname "$PGDATA")"
rm -f "$ARCHIVE"
echo "pgstandby-restore: unpacked the snapshot's data directory into $PGDATA"
if [ -z "${PGSTANDBY_START_COMMAND:-}" ]; then
    exec "$@"
fi
until pg_isready -q -h "${PGSTANDBY_PRIMARY_HOST:-postgres-primary-lab}" -p 5432; do
    sleep "${PGSTANDBY_POLL_INTERVAL:-2}"
done
eval "exec $PGSTANDBY_START_COMMAND"
