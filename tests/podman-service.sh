#!/bin/bash
# Podman, rootful, behind its Docker-compatible socket: the engine shape of a machine with
# Podman instead of Docker. Installs Debian's podman and the CNI dnsname plugin (without
# it, containers of a network do not resolve each other's aliases, and the standby never
# finds postgres-primary-lab), gives containers the rlimits this machine kind accepts,
# starts `podman system service`, and copies the lab image in (no registry). Run as root;
# safe to rerun; prints the DOCKER_HOST to use. `podman-service.sh stop` ends the service.
set -euo pipefail
# shellcheck source=tests/engine-lib.sh
source "$(dirname "$0")/engine-lib.sh"

SOCK=/run/podman/podman.sock
URL="unix://$SOCK"
LOG=/tmp/pgstandby-podman-service.log
IMAGE=${PGSTANDBY_PODMAN_IMAGE:-pgstandby/postgres:15}

if [ "${1:-}" = stop ]; then
    pkill -f "podman system service --time=0 $URL" 2>/dev/null || true
    exit 0
fi

if ! command -v podman >/dev/null || [ ! -e /usr/lib/cni/dnsname ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q --no-install-recommends podman \
        golang-github-containernetworking-plugin-dnsname >/dev/null
fi
mkdir -p /etc/containers
# Podman's default rlimits are refused on this machine kind
if ! grep -q '^default_ulimits' /etc/containers/containers.conf 2>/dev/null; then
    printf '[containers]\ndefault_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]\n' \
        >>/etc/containers/containers.conf
fi

# a service started from a directory removed since (an earlier checkout) answers, but
# starts no container ("conmon: Failed to get working directory"): restarted, from /
restart_if_adrift "podman system service --time=0 $URL"
if ! DOCKER_HOST=$URL docker version >/dev/null 2>&1; then
    mkdir -p "$(dirname "$SOCK")"
    # exec: no shell stays behind holding this script's stdout, which the caller reads to
    # its end ($(podman-service.sh) in .ci/run would wait as long as the service lives)
    (cd / && exec setsid podman system service --time=0 "$URL" >"$LOG" 2>&1 </dev/null) &
    wait_for_engine podman-service.sh "$URL" "$LOG" 30
fi

copy_image "$IMAGE" "$URL"
echo "$URL"
