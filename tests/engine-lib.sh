# shellcheck shell=bash
# What tests/remote-daemon.sh and tests/podman-service.sh share, sourced by both: wait
# (bounded) for an engine started in the background to answer, and copy the lab image
# into it from this machine's Docker (no registry) unless it holds that image already.

# wait_for_engine NAME URL LOG [SECONDS]: 0 once `docker version` answers at URL, else
# the log's tail and exit 1
wait_for_engine() {
    local name=$1 url=$2 log=$3 tries=$(( ${4:-60} * 5 ))
    for _ in $(seq 1 "$tries"); do
        DOCKER_HOST=$url docker version >/dev/null 2>&1 && return 0
        sleep 0.2
    done
    echo "$name: no engine answered at $url; its log:" >&2
    tail -n 30 "$log" >&2
    exit 1
}

# copy_image IMAGE URL: `docker save | load` into the engine at URL when its image differs
copy_image() {
    local image=$1 url=$2 here there
    here=$(docker image inspect -f '{{.Id}}' "$image")
    there=$(DOCKER_HOST=$url docker image inspect -f '{{.Id}}' "$image" 2>/dev/null || true)
    if [ "${here#sha256:}" != "${there#sha256:}" ]; then
        docker save "$image" | DOCKER_HOST=$url docker load >/dev/null
    fi
}

# restart_if_adrift PATTERN: stop the service whose command line matches PATTERN when its
# working directory was removed since it started (it answers, but each container start
# fails in conmon: "Failed to get working directory"); the caller then starts it anew
restart_if_adrift() {
    local pid
    for pid in $(pgrep -f "$1" || true); do
        if [[ "$(readlink "/proc/$pid/cwd" 2>/dev/null)" == *" (deleted)" ]]; then
            kill "$pid" 2>/dev/null || true
            for _ in $(seq 1 50); do
                kill -0 "$pid" 2>/dev/null || break
                sleep 0.1
            done
        fi
    done
}
