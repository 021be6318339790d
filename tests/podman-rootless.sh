#!/bin/bash
# Rootless Podman behind its Docker-compatible socket, run by an unprivileged account (the
# shape of a developer's machine or a CI runner without root): installs what rootless
# containers need, gives the account its subordinate ids, a runtime directory and native
# overlay storage, starts `podman system service` as that account, and copies the lab
# image into its store (no registry). Run as root; safe to rerun; prints the DOCKER_HOST
# to use as that account. `podman-rootless.sh stop` ends the service.
#   PGSTANDBY_ROOTLESS_USER  the account (default pgstandby-ci, made if missing)
set -euo pipefail
# shellcheck source=tests/engine-lib.sh
source "$(dirname "$0")/engine-lib.sh"

ACCOUNT=${PGSTANDBY_ROOTLESS_USER:-pgstandby-ci}
IMAGE=${PGSTANDBY_PODMAN_IMAGE:-pgstandby/postgres:15}
LOG=/tmp/pgstandby-podman-rootless.log

id "$ACCOUNT" >/dev/null 2>&1 || useradd --create-home --shell /bin/bash "$ACCOUNT"
uid=$(id -u "$ACCOUNT")
RUNTIME=/run/user/$uid
URL="unix://$RUNTIME/podman/podman.sock"

if [ "${1:-}" = stop ]; then
    pkill -u "$ACCOUNT" -f "podman system service --time=0 $URL" 2>/dev/null || true
    exit 0
fi

# podman-service.sh (rootful) installs podman, the CNI dnsname plugin and the rlimits of
# /etc/containers/containers.conf, which rootless containers read too; rootless also
# needs newuidmap/newgidmap (uidmap) and a user-mode network (slirp4netns)
bash "$(dirname "$0")/podman-service.sh" >/dev/null
if ! command -v newuidmap >/dev/null || ! command -v slirp4netns >/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
        uidmap slirp4netns >/dev/null
fi
# slirp4netns opens /dev/net/tun inside the account's namespaces: this machine kind makes
# it 0600 (root only), where distributions make it 0666 (the kernel checks the network
# namespace's capabilities, not the file's mode)
chmod 0666 /dev/net/tun
for f in /etc/subuid /etc/subgid; do
    grep -q "^$ACCOUNT:" "$f" 2>/dev/null || echo "$ACCOUNT:200000:65536" >>"$f"
done
install -d -o "$ACCOUNT" -g "$ACCOUNT" -m 0700 "$RUNTIME" "$RUNTIME/podman"

# native overlay (kernel >= 5.13): without this file a first run may settle on vfs, which
# copies the whole image for every container
# shellcheck disable=SC2016  # expanded by the account's own shell
runuser -u "$ACCOUNT" -- bash -euc '
    conf=$HOME/.config/containers/storage.conf
    if [ ! -f "$conf" ]; then
        mkdir -p "$(dirname "$conf")"
        printf "[storage]\ndriver = \"overlay\"\n" >"$conf"
    fi
'
restart_if_adrift "podman system service --time=0 $URL"  # see podman-service.sh
if ! DOCKER_HOST=$URL docker version >/dev/null 2>&1; then
    cd /
    runuser -u "$ACCOUNT" -- env XDG_RUNTIME_DIR="$RUNTIME" HOME="$(getent passwd "$ACCOUNT" | cut -d: -f6)" \
        setsid podman system service --time=0 "$URL" >"$LOG" 2>&1 < /dev/null &
    wait_for_engine podman-rootless.sh "$URL" "$LOG" 30
fi
copy_image "$IMAGE" "$URL"
echo "$URL"
