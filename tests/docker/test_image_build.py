"""`pgstandby image build` twice at once (two pytest-xdist workers asking for the same
tag): one builds, the other waits on the lock and finds the image cached; a major the
mirror lacks is refused before any work."""

from __future__ import annotations

import subprocess
import sys
import uuid


def test_concurrent_builds_of_one_tag_build_once(docker_client) -> None:  # type: ignore[no-untyped-def]
    tag = f"pgstandby/postgres:15-concurrency-{uuid.uuid4().hex[:8]}"
    argv = [sys.executable, "-m", "pytest_pgstandby.cli", "image", "build", "--pg", "15"]
    try:
        # the layer cache of the project's image keeps this to seconds
        builds = [
            subprocess.Popen([*argv, "--tag", tag], stdout=subprocess.PIPE, text=True)
            for _ in range(2)
        ]
        outputs = [b.communicate(timeout=900)[0] for b in builds]
        assert [b.returncode for b in builds] == [0, 0], outputs
        built = [o for o in outputs if f"image {tag} built in" in o]
        waited = [o for o in outputs if f"image {tag} is cached (built while we waited)" in o]
        assert len(built) == 1 and len(waited) == 1, outputs
        assert docker_client.images.get(tag).labels.get("org.pgstandby.image") == "1"
    finally:
        subprocess.run(["docker", "rmi", "-f", tag], capture_output=True)


def test_a_major_the_mirror_lacks_is_refused_before_any_build_work(docker_client) -> None:  # type: ignore[no-untyped-def]
    """`--pg 99`: one line, exit 2, before apt, debootstrap or docker run: no image, no
    layer, no container is left (the Dockerfile's own apt-cache check came only after
    `apt-get update`, and left the layers built before it)."""
    tag = f"pgstandby-test/pg99:{uuid.uuid4().hex[:8]}"
    built_99 = {"label": "org.pgstandby.pg-major=99"}
    argv = [sys.executable, "-m", "pytest_pgstandby.cli", "image", "build", "--pg", "99"]
    result = subprocess.run(
        [*argv, "--tag", tag],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr == (
        "pgstandby: error: --pg 99: no Debian release carries postgresql-99 (bullseye "
        "carries 13, bookworm 15, trixie 17); nothing was downloaded or built. Fix: --pg 13, "
        "15 or 17, or add --suite SUITE if PGSTANDBY_APT_MIRROR serves postgresql-99 for that "
        "release (apt.postgresql.org does).\n"
    )
    assert result.stdout == "", "no step of the build started"
    assert not docker_client.images.list(name=tag)
    assert not docker_client.images.list(all=True, filters=built_99)
    assert not docker_client.containers.list(all=True, filters=built_99, ignore_removed=True)
