#!/bin/bash
# pytest in a container of the local daemon with the daemon's socket mounted, as a CI job
# run in a container does: the project installed there from a wheel built now (ahead of
# anything else on the path), this machine's Python mounted read-only at its own path, the
# checkout's tests at /src. Runs the replication, scenario and assertion suites, which then
# reach the servers by joining each cluster's network (nothing published). .ci/run runs it.
set -euo pipefail
cd "$(dirname "$0")/.."
image=${PGSTANDBY_IMAGE:-pgstandby/postgres:15}
python=$(python3 -c 'import sys; print(sys.executable)')
base=$(python3 -c 'import sys; print(sys.base_prefix)')
prefix=$(python3 -c 'import sys; print(sys.prefix)')
work=$(mktemp -d /tmp/pgstandby-job-XXXXXX)
trap 'rm -rf "$work"' EXIT
python3 -m build -q --wheel -o "$work/dist" . >/dev/null
python3 -m pip install -q --no-deps --target "$work/site" "$work"/dist/*.whl
docker run --rm --label org.pgstandby.test=job \
    -v /var/run/docker.sock:/var/run/docker.sock \
    -v "$base:$base:ro" -v "$prefix:$prefix:ro" -v "$PWD:/src:ro" -v "$work:/job" \
    -e PYTHONPATH=/job/site -e PYTHONDONTWRITEBYTECODE=1 -e HOME=/job \
    -e PGSTANDBY_REQUIRE_DOCKER=1 -e PGSTANDBY_IMAGE="$image" \
    -w /src --entrypoint "$python" "$image" \
    -m pytest -p no:cacheprovider -q -n 2 "$@" \
    tests/docker/test_replication.py tests/docker/test_scenarios.py \
    tests/docker/test_assertions_docker.py
