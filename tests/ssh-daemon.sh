#!/bin/bash
# The namespace's daemon (tests/remote-daemon.sh) reached over ssh:// instead of TCP, as a
# build host often is: an sshd of its own inside the namespace, on its address only, that
# accepts one key and runs `docker system dial-stdio` against that daemon for it (a forced
# command: the key can do nothing else). This account's ~/.ssh/config gets a host entry
# `pgstandby-remote` (key, known host), marked and written once. Run as root; safe to
# rerun; prints the DOCKER_HOST to use. `ssh-daemon.sh stop` ends that sshd.
set -euo pipefail
cd "$(dirname "$0")"

NS=${PGSTANDBY_REMOTE_NETNS:-pgstandby-remote}
NS_IP=10.213.7.2
DIR=/var/lib/pgstandby-remote-ssh
PIDFILE=/run/pgstandby-remote-docker/sshd.pid
SOCK=unix:///run/pgstandby-remote-docker/docker.sock  # remote-daemon.sh's second socket
ALIAS=pgstandby-remote

if [ "${1:-}" = stop ]; then
    if [ -f "$PIDFILE" ]; then
        kill "$(cat "$PIDFILE")" 2>/dev/null || true
    fi
    exit 0
fi

bash remote-daemon.sh >/dev/null
if [ ! -x /usr/sbin/sshd ]; then
    # Debian's policy-rc.d here keeps the package from starting a system-wide sshd
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
        openssh-server >/dev/null
fi
mkdir -p "$DIR" /run/sshd /run/pgstandby-remote-docker
chmod 0700 "$DIR"
[ -f "$DIR/host_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -f "$DIR/host_ed25519"
[ -f "$DIR/client_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -f "$DIR/client_ed25519"
printf 'command="DOCKER_HOST=%s docker system dial-stdio",restrict %s\n' \
    "$SOCK" "$(cat "$DIR/client_ed25519.pub")" >"$DIR/authorized_keys"
cat >"$DIR/sshd_config" <<EOF
ListenAddress $NS_IP:22
HostKey $DIR/host_ed25519
PidFile $PIDFILE
AuthorizedKeysFile $DIR/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
EOF

if ! { [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; }; then
    nsenter --net="/run/netns/$NS" /usr/sbin/sshd -f "$DIR/sshd_config"
fi

mkdir -p ~/.ssh
chmod 0700 ~/.ssh
if ! grep -q "^Host $ALIAS\$" ~/.ssh/config 2>/dev/null; then
    # one ssh connection shared by docker-py's requests (ControlMaster): without it each
    # request makes its own, and a pair takes ~10x as long
    printf '\n# pgstandby-remote: tests/ssh-daemon.sh\nHost %s\n    HostName %s\n    User root\n    IdentityFile %s\n    IdentitiesOnly yes\n    ControlMaster auto\n    ControlPath /run/pgstandby-remote-docker/ssh-%%C\n    ControlPersist 60\n' \
        "$ALIAS" "$NS_IP" "$DIR/client_ed25519" >>~/.ssh/config
fi
known="$NS_IP $(cut -d' ' -f1,2 "$DIR/host_ed25519.pub")"
grep -qxF "$known" ~/.ssh/known_hosts 2>/dev/null || echo "$known" >>~/.ssh/known_hosts

url="ssh://$ALIAS"
for _ in $(seq 1 50); do
    DOCKER_HOST=$url docker version >/dev/null 2>&1 && { echo "$url"; exit 0; }
    sleep 0.2
done
echo "ssh-daemon.sh: no daemon answered at $url" >&2
DOCKER_HOST=$url docker version >&2 || true
exit 1
