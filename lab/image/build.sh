#!/bin/bash
# Build the lab's PostgreSQL image without any container registry:
#   1. pgstandby/debian-base:<suite>: `debootstrap --variant=minbase <suite>` from the
#      host's configured apt mirror, imported with `docker import` (once per suite);
#   2. pgstandby/postgres:<major>: lab/image/Dockerfile on top of it, PostgreSQL from
#      Debian's packages, same contract as the official `postgres` image.
# Each Debian release carries one PostgreSQL major, so the major picks the release:
# bullseye 13, bookworm 15, trixie 17 (--suite overrides it, e.g. for a mirror that
# also serves apt.postgresql.org's packages).
# An existing tag is reused unless --force is given. Concurrent callers (pytest-xdist
# workers, two terminals) are serialised per suite with flock: one builds, the others
# wait and then find the image cached; builds of different suites run side by side.
#
# usage: build.sh [--pg MAJOR] [--suite SUITE] [--tag TAG] [--force] [--rebuild-base]
#                 [--check-args]
# env:   PGSTANDBY_APT_MIRROR / PGSTANDBY_APT_SECURITY_MIRROR override the mirror read
#        from the host's apt configuration; PGSTANDBY_IMAGE_LOCK overrides the lock file.
set -e
set -o pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
LABEL="org.pgstandby.image=1"
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
# The Debian release that carries each PostgreSQL major (its only postgresql-N package)
SUITE_MAJORS="bullseye:13 bookworm:15 trixie:17"

PG_MAJOR=15
SUITE=""
TAG=""
FORCE=0
REBUILD_BASE=0
CHECK_ARGS=0

usage() {
    cat <<EOF
usage: $(basename "$0") [--pg MAJOR] [--suite SUITE] [--tag TAG] [--force] [--rebuild-base]

Builds the lab image (default tag pgstandby/postgres:MAJOR, MAJOR defaults to 15) from a
Debian root filesystem debootstrapped from the host's apt mirror. The major picks the
Debian release that carries it: bullseye 13, bookworm 15, trixie 17.
  --pg MAJOR       PostgreSQL major version: 13, 15 or 17
  --suite SUITE    the Debian release to build on (default: the one that carries MAJOR)
  --tag TAG        image tag (default pgstandby/postgres:MAJOR)
  --force          rebuild the image even if TAG exists
  --rebuild-base   also re-create the base image (debootstrap again)
  --check-args     judge the arguments and exit (0: a build would start); nothing else
EOF
}

say() { printf '==> %s\n' "$*"; }
die() { printf 'build.sh: error: %s\n' "$*" >&2; exit 1; }
# bad input: one line, exit 2, before any apt, debootstrap or docker work
refuse() { printf 'build.sh: error: %s\n' "$*" >&2; exit 2; }

while [ $# -gt 0 ]; do
    case "$1" in
        --pg) [ $# -ge 2 ] || die "--pg needs a value"; PG_MAJOR="$2"; shift 2 ;;
        --pg=*) PG_MAJOR="${1#--pg=}"; shift ;;
        --suite) [ $# -ge 2 ] || die "--suite needs a value"; SUITE="$2"; shift 2 ;;
        --suite=*) SUITE="${1#--suite=}"; shift ;;
        --tag) [ $# -ge 2 ] || die "--tag needs a value"; TAG="$2"; shift 2 ;;
        --tag=*) TAG="${1#--tag=}"; shift ;;
        --force) FORCE=1; shift ;;
        --rebuild-base) REBUILD_BASE=1; FORCE=1; shift ;;
        --check-args) CHECK_ARGS=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; die "unknown argument: $1" ;;
    esac
done
case "$PG_MAJOR" in
    ''|*[!0-9]*) refuse "--pg must be a major version number, got '$PG_MAJOR'" ;;
esac
case "$SUITE" in
    *[!a-z0-9-]*) refuse "--suite must be a Debian release name such as bookworm, got '$SUITE'" ;;
esac
if [ -z "$SUITE" ]; then
    for pair in $SUITE_MAJORS; do
        [ "${pair#*:}" = "$PG_MAJOR" ] && SUITE="${pair%%:*}"
    done
    [ -n "$SUITE" ] || refuse "--pg $PG_MAJOR: no Debian release carries postgresql-$PG_MAJOR (bullseye carries 13, bookworm 15, trixie 17); nothing was downloaded or built. Fix: --pg 13, 15 or 17, or add --suite SUITE if PGSTANDBY_APT_MIRROR serves postgresql-$PG_MAJOR for that release (apt.postgresql.org does)."
fi
BASE_IMAGE="pgstandby/debian-base:$SUITE"
LOCK_FILE="${PGSTANDBY_IMAGE_LOCK:-/tmp/pgstandby-image-build-$SUITE.lock}"
TAG="${TAG:-pgstandby/postgres:$PG_MAJOR}"
[ "$CHECK_ARGS" = 0 ] || exit 0

image_exists() { docker image inspect "$1" >/dev/null 2>&1; }
# The recipe: a digest of the files the image is built from, stored as a label. A cached
# tag counts only when it was built from this recipe, so a checkout whose Dockerfile or
# entrypoint changed rebuilds instead of testing against a stale image.
RECIPE="$(cat "$HERE/Dockerfile" "$HERE/docker-entrypoint.sh" | sha256sum | cut -c1-16)"
cached() {
    [ "$(docker image inspect -f '{{index .Config.Labels "org.pgstandby.recipe"}}' "$1" 2>/dev/null)" = "$RECIPE" ]
}

docker info >/dev/null 2>&1 || die "no Docker daemon answers (docker info failed)"

# fast path, without the lock
if [ "$FORCE" = 0 ] && cached "$TAG"; then
    say "image $TAG is cached (use --force to rebuild)"
    exit 0
fi
if [ "$FORCE" = 0 ] && image_exists "$TAG"; then
    say "image $TAG was built from another recipe than this checkout's; rebuilding it"
    FORCE=stale
fi

# one build at a time; whoever waited re-checks the tag afterwards
# (opened read-only: flock needs no write access, so users who share the machine share
# the lock file whoever created it)
if [ ! -e "$LOCK_FILE" ]; then
    : >>"$LOCK_FILE"
    chmod a+rw "$LOCK_FILE" 2>/dev/null || true
fi
exec 9<"$LOCK_FILE"
if ! flock -n 9; then
    say "another build holds $LOCK_FILE; waiting for it"
    flock 9
fi
if [ "$FORCE" != 1 ] && cached "$TAG"; then
    say "image $TAG is cached (built while we waited)"
    exit 0
fi

# --- the host's apt mirror -------------------------------------------------------------
# Prints the URIs of the host's apt sources (deb822 `URIs:` lines and one-line `deb`
# entries), one per line, in file order.
host_apt_uris() {
    local f
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] || continue
        awk 'tolower($1) == "uris:" { for (i = 2; i <= NF; i++) print $i }' "$f"
    done
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [ -f "$f" ] || continue
        # deb [opts] URI suite components...
        awk '$1 == "deb" {
                i = 2
                if ($i ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
                if (i <= NF) print $i
            }' "$f"
    done
}

MIRROR="${PGSTANDBY_APT_MIRROR:-}"
SECURITY_MIRROR="${PGSTANDBY_APT_SECURITY_MIRROR:-}"
if [ -z "$MIRROR" ]; then
    MIRROR="$(host_apt_uris | grep -v -- '-security' | grep -E '^(https?|file)://' | head -n1 || true)"
fi
if [ -z "$SECURITY_MIRROR" ]; then
    SECURITY_MIRROR="$(host_apt_uris | grep -E -- '-security/?$' | head -n1 || true)"
fi
[ -n "$MIRROR" ] || die "found no apt mirror in /etc/apt/sources.list{,.d/} (set PGSTANDBY_APT_MIRROR)"
MIRROR="${MIRROR%/}"
SECURITY_MIRROR="${SECURITY_MIRROR%/}"

# Containers reach the mirror by the address the host resolves for it, so they need no
# DNS of their own (--add-host). A mirror on the host's loopback is only reachable with
# --network host, which the probe below falls back to.
url_host() { printf '%s\n' "$1" | sed -E 's#^[a-z]+://([^/@]*@)?(\[[^]]*\]|[^:/]*).*#\2#'; }
ADD_HOST_ARGS=()
for h in "$(url_host "$MIRROR")" "$(url_host "$SECURITY_MIRROR")"; do
    case "$h" in
        ''|localhost|\[*) continue ;;          # nothing to resolve / IPv6 literal
        *[!0-9.]*) ;;                          # a name: resolve it below
        *) continue ;;                         # already an IPv4 address
    esac
    case " ${ADD_HOST_ARGS[*]} " in *" $h:"*) continue ;; esac
    ip="$(getent ahostsv4 "$h" 2>/dev/null | awk 'NR == 1 { print $1 }' || true)"
    if [ -n "$ip" ]; then
        ADD_HOST_ARGS+=(--add-host "$h:$ip")
    fi
done

# --- base image --------------------------------------------------------------------------
WORKDIR=""
cleanup() {
    if [ -n "$WORKDIR" ] && [ -d "$WORKDIR" ]; then
        # debootstrap mounts proc/sys/dev/pts in the target; never rm through a mount
        local m
        { findmnt -rn -o TARGET 2>/dev/null | grep -F "$WORKDIR/" | sort -r || true; } |
            while read -r m; do
                umount -l "$m" 2>/dev/null || true
            done
        rm -rf --one-file-system "$WORKDIR"
    fi
    WORKDIR=""
}
trap cleanup EXIT
trap 'exit 130' INT TERM

build_base() {
    command -v debootstrap >/dev/null || die "debootstrap is not installed (apt-get install debootstrap)"
    [ "$(id -u)" = 0 ] || die "debootstrap needs root to create $BASE_IMAGE"
    local start=$SECONDS keyring_args=() ROOTFS
    [ -f "$KEYRING" ] && keyring_args=(--keyring="$KEYRING")

    WORKDIR="$(mktemp -d /tmp/pgstandby-rootfs.XXXXXX)"
    ROOTFS="$WORKDIR/rootfs"
    say "debootstrap --variant=minbase $SUITE from $MIRROR into $ROOTFS"
    if ! debootstrap --variant=minbase "${keyring_args[@]}" "$SUITE" "$ROOTFS" "$MIRROR" \
            >"$WORKDIR/debootstrap.log" 2>&1; then
        tail -n 40 "$WORKDIR/debootstrap.log" >&2
        die "debootstrap failed"
    fi
    say "debootstrap done in $((SECONDS - start)) s"

    say "pointing the root filesystem's apt at the same mirror"
    rm -f "$ROOTFS/etc/apt/sources.list"
    {
        printf 'Types: deb\nURIs: %s\nSuites: %s %s-updates\nComponents: main\nSigned-By: %s\n' \
            "$MIRROR" "$SUITE" "$SUITE" "$KEYRING"
        if [ -n "$SECURITY_MIRROR" ]; then
            printf '\nTypes: deb\nURIs: %s\nSuites: %s-security\nComponents: main\nSigned-By: %s\n' \
                "$SECURITY_MIRROR" "$SUITE" "$KEYRING"
        fi
    } >"$ROOTFS/etc/apt/sources.list.d/debian.sources"
    [ -f "$ROOTFS$KEYRING" ] || die "the root filesystem lacks $KEYRING"
    # a smaller image, as Debian's -slim images: no docs, man pages or translations, now
    # or from packages installed later (copyright files are kept)
    cat >"$ROOTFS/etc/dpkg/dpkg.cfg.d/pgstandby-slim" <<'EOF_DPKG'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/locale/*
EOF_DPKG
    find "$ROOTFS/usr/share/doc" -mindepth 1 ! -type d ! -name copyright -delete
    find "$ROOTFS/usr/share/doc" -mindepth 1 -type d -empty -delete
    rm -rf "$ROOTFS"/usr/share/man/* "$ROOTFS"/usr/share/groff/* "$ROOTFS"/usr/share/info/* \
        "$ROOTFS"/usr/share/lintian/* "$ROOTFS"/usr/share/locale/*
    # Docker provides these at run time
    rm -rf "$ROOTFS"/var/cache/apt/archives/*.deb "$ROOTFS"/var/lib/apt/lists/* \
        "$ROOTFS"/var/log/*.log "$ROOTFS"/tmp/*
    : >"$ROOTFS/etc/resolv.conf"
    : >"$ROOTFS/etc/hostname"

    say "docker import -> $BASE_IMAGE"
    tar --numeric-owner -C "$ROOTFS" -c . | docker import \
        --change "LABEL $LABEL" \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'CMD ["bash"]' \
        - "$BASE_IMAGE" >/dev/null
    cleanup
    say "base image $BASE_IMAGE ready in $((SECONDS - start)) s"
}

image_id() { docker image inspect --format '{{.Id}}' "$1" 2>/dev/null || true; }
# a rebuilt tag leaves the previous image dangling: drop it (unless a container uses it)
drop_replaced() {
    local old="$1" tag="$2"
    if [ -n "$old" ] && [ "$old" != "$(image_id "$tag")" ]; then
        docker rmi "$old" >/dev/null 2>&1 || true
    fi
}

if [ "$REBUILD_BASE" = 1 ] || ! image_exists "$BASE_IMAGE"; then
    old_base="$(image_id "$BASE_IMAGE")"
    build_base
    drop_replaced "$old_base" "$BASE_IMAGE"
else
    say "base image $BASE_IMAGE is cached"
fi

# --- can a build container reach the mirror? ------------------------------------------
NETWORK_ARGS=()
apt_probe() {
    docker run --rm --label "$LABEL" "$@" "${ADD_HOST_ARGS[@]}" "$BASE_IMAGE" \
        apt-get -q -o Acquire::Retries=1 -o Acquire::http::Timeout=20 update >/dev/null 2>&1
}
say "checking that apt-get in a container reaches $MIRROR"
if apt_probe; then
    say "the default bridge network reaches the mirror"
elif apt_probe --network host; then
    say "using --network host for the build (the bridge network does not reach the mirror)"
    NETWORK_ARGS=(--network host)
else
    die "apt-get update fails inside a $BASE_IMAGE container (bridge and host network); is $MIRROR reachable?"
fi

# --- the PostgreSQL image ----------------------------------------------------------------
start=$SECONDS
old_image="$(image_id "$TAG")"
CACHE_ARGS=()
# --force means a real rebuild (fresh packages), not the classic builder's layer cache
[ "$FORCE" = 1 ] && CACHE_ARGS=(--no-cache)
say "docker build $TAG (PostgreSQL $PG_MAJOR on Debian $SUITE)"
# the classic builder: the CLI may lack buildx, and the image needs no BuildKit feature
DOCKER_BUILDKIT=0 docker build \
    --build-arg "PG_MAJOR=$PG_MAJOR" \
    --build-arg "BASE_IMAGE=$BASE_IMAGE" \
    --build-arg "SUITE=$SUITE" \
    --label "$LABEL" --label "org.pgstandby.recipe=$RECIPE" \
    "${NETWORK_ARGS[@]}" "${ADD_HOST_ARGS[@]}" "${CACHE_ARGS[@]}" \
    --force-rm \
    -t "$TAG" "$HERE"
say "image $TAG built in $((SECONDS - start)) s"
drop_replaced "$old_image" "$TAG"
