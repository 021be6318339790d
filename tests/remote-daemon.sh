#!/bin/bash
# A second Docker daemon, in a network namespace of its own, reached over TCP: the shape of
# a CI job's `docker:dind` service (DOCKER_HOST=tcp://docker:2375), for tests/docker/
# test_engines.py. The namespace is this project's own test host (10.213.7.2, a /30 on a
# veth pair with this machine): nothing else is ever addressed. The lab image is copied
# into it with `docker save | docker load` (no registry). Run as root; safe to rerun;
# prints the DOCKER_HOST to use. `remote-daemon.sh stop` ends the daemon and the namespace.
set -euo pipefail
# shellcheck source=tests/engine-lib.sh
source "$(dirname "$0")/engine-lib.sh"

NS=${PGSTANDBY_REMOTE_NETNS:-pgstandby-remote}
HOST_IP=10.213.7.1
NS_IP=10.213.7.2
URL="tcp://$NS_IP:2375"
ROOT=/var/lib/pgstandby-remote-docker
RUN=/run/pgstandby-remote-docker
LOG=/tmp/pgstandby-remote-dockerd.log
IMAGE=${PGSTANDBY_REMOTE_IMAGE:-pgstandby/postgres:15}

if [ "${1:-}" = stop ]; then
    if [ -f "$RUN/docker.pid" ]; then
        kill "$(cat "$RUN/docker.pid")" 2>/dev/null || true
    fi
    ip netns delete "$NS" 2>/dev/null || true
    exit 0
fi

if ! ip netns list | grep -qw "$NS"; then
    ip netns add "$NS"
    ip link add pgsb-host type veth peer name pgsb-ns
    ip link set pgsb-ns netns "$NS"
    ip addr add "$HOST_IP/30" dev pgsb-host
    ip link set pgsb-host up
    ip -n "$NS" addr add "$NS_IP/30" dev pgsb-ns
    ip -n "$NS" link set pgsb-ns up
    ip -n "$NS" link set lo up
fi

if ! DOCKER_HOST=$URL docker info >/dev/null 2>&1; then
    mkdir -p "$ROOT" "$RUN"
    # nsenter, not `ip netns exec`, which hides the cgroup mounts dockerd needs here.
    # No default bridge and no iptables: the harness makes a network per cluster, and
    # published ports go through docker-proxy on the namespace's own address.
    nohup nsenter --net="/run/netns/$NS" dockerd -H "$URL" -H "unix://$RUN/docker.sock" \
        --tls=false --data-root "$ROOT/data" --exec-root "$RUN/exec" \
        --pidfile "$RUN/docker.pid" --bridge=none --iptables=false --ip6tables=false \
        >"$LOG" 2>&1 &
    wait_for_engine remote-daemon.sh "$URL" "$LOG" 90
fi

copy_image "$IMAGE" "$URL"
echo "$URL"
