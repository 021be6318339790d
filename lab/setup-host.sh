#!/bin/bash
# Prepares a Debian/Ubuntu host (as root) for the lab and the test suite: the Docker
# engine, Compose, debootstrap (to build the lab image without a registry), shellcheck,
# python3-venv, acl (setfacl: the tests plant a template as another account would);
# then starts dockerd unless a daemon already answers. Safe to rerun.
set -e

DOCKERD_LOG="${PGSTANDBY_DOCKERD_LOG:-/tmp/pgstandby-dockerd.log}"

if [ "$(id -u)" != 0 ]; then
    echo "setup-host.sh: run as root (it installs packages and starts dockerd)" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends \
    docker.io docker-compose debootstrap shellcheck python3-venv ca-certificates acl >/dev/null
echo "==> packages installed"

if docker info >/dev/null 2>&1; then
    echo "==> a Docker daemon already answers"
    exit 0
fi
nohup dockerd >"$DOCKERD_LOG" 2>&1 &
for _ in $(seq 1 300); do
    if docker info >/dev/null 2>&1; then
        echo "==> dockerd started (log: $DOCKERD_LOG)"
        exit 0
    fi
    sleep 0.2
done
echo "setup-host.sh: dockerd did not answer within 60 s; its log:" >&2
tail -n 40 "$DOCKERD_LOG" >&2
exit 1
