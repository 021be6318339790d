"""`pgstandby image build` twice at once (two pytest-xdist workers asking for the same
tag): one builds, the other waits on the lock and finds the image cached."""

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
