"""`pgstandby lab walkthrough --backend docker`: the same seven sections, run with
`docker exec` in a standby container beside the backend's primary, all proved; no
container or network of the run is left afterwards."""

from __future__ import annotations

import time
from typing import Any

import pytest

from pytest_pgstandby.backends.containers import LABEL, LABEL_OWNER_PID
from tests.docker.compose import IMAGE
from tests.local.test_walkthrough import (
    assert_common_proofs,
    assert_every_section_shown_and_passed,
    assert_no_password_shown,
    walk,
)

pytestmark = pytest.mark.docker


def _left_by(client: Any, pid: int) -> list[str]:
    mine = {"label": [f"{LABEL}=1", f"{LABEL_OWNER_PID}={pid}"]}
    containers = client.containers.list(all=True, filters=mine, ignore_removed=True)
    networks = client.networks.list(filters=mine)
    return [c.name for c in containers] + [n.name for n in networks]


def test_walkthrough_on_docker_proves_every_section_and_leaves_nothing(docker_client: Any) -> None:
    started = time.monotonic()
    status, out, pid = walk("docker", "--image", IMAGE)
    print(f"docker walkthrough: {time.monotonic() - started:.1f} s")
    assert status == 0, out
    parts = assert_every_section_shown_and_passed(out)
    assert_common_proofs(parts)
    # the seed's own names: the standby reaches the primary by its alias, on port 5432
    assert "postgres-primary-lab:5432 - accepting connections (exit 0)" in parts[1]
    assert "status streaming, from postgres-primary-lab:5432" in parts[7]
    assert "each section runs as `docker exec` (root)" in out
    assert_no_password_shown(out)
    assert "removed: containers pgstandby-" in out and "removed: network pgstandby-" in out
    assert _left_by(docker_client, pid) == []


def test_a_missing_image_is_an_error_naming_the_fix(docker_client: Any) -> None:
    status, out, pid = walk("docker", "--image", "pgstandby/no-such-image:1")
    assert status == 2, out
    assert "pgstandby: error: image pgstandby/no-such-image:1 is not in the local Docker" in out
    assert "Fix: `pgstandby image build --pg 15` (then --image pgstandby/postgres:15)" in out
    status, out, pid = walk("docker", "--image", "pgstandby/postgres:99")
    assert status == 2, out
    assert "Fix: build it: `pgstandby image build --pg 99`, or pick another" in out
    assert "Traceback" not in out
    assert _left_by(docker_client, pid) == []
