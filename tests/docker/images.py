"""Images the Docker tests need: the matrix's lab images (built by build.sh, which caches
per tag and serialises per Debian release) and small images derived from them, built
here under pgstandby-test/ and removed after."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import docker

from tests.docker.compose import BUILD_SH, BUILD_TIMEOUT, tail

#: the majors the lab image is built for: each Debian release carries one
MATRIX = ("13", "15", "17")


def ensure_images(majors: tuple[str, ...] = MATRIX) -> dict[str, str]:
    """pgstandby/postgres:<major> for each major, built side by side where missing."""
    builds = {
        major: subprocess.Popen(
            ["bash", str(BUILD_SH), "--pg", major],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for major in majors
    }
    for major, build in builds.items():
        out, _ = build.communicate(timeout=BUILD_TIMEOUT)
        if build.returncode != 0:
            raise AssertionError(f"build.sh --pg {major} failed:\n{tail(out)}")
    return {major: f"pgstandby/postgres:{major}" for major in majors}


@contextmanager
def derived_image(
    client: docker.DockerClient, base: str, *lines: str, tag: str | None = None
) -> Iterator[str]:
    """``FROM base`` plus ``lines``, tagged pgstandby-test/derived:<random> (or
    pgstandby-test/derived-<random>:<tag>, a tag that may lie); removed after."""
    random = uuid.uuid4().hex[:10]
    name = f"pgstandby-test/derived-{random}:{tag}" if tag else f"pgstandby-test/derived:{random}"
    subprocess.run(
        ["docker", "build", "-q", "-t", name, "-"],
        input="\n".join((f"FROM {base}", *lines)) + "\n",
        text=True,
        check=True,
        capture_output=True,
        timeout=300,
        env={**os.environ, "DOCKER_BUILDKIT": "0"},
    )
    try:
        yield name
    finally:
        client.images.remove(name, force=True)
