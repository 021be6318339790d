"""Nothing of a Docker session is left after any end of pytest (tests/ends.py)."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from pytest_pgstandby.backends.containers import LABEL, LABEL_OWNER_PID
from tests.ends import HOLDING_FRESH_TEST, HOLDING_TEST, kill_holding_pytest, wait_for_none_left

pytestmark = pytest.mark.docker


@pytest.mark.parametrize(
    ("sig", "workers", "group"),
    [(signal.SIGKILL, "0", False), (signal.SIGTERM, "0", False), (signal.SIGKILL, "2", True)],
    ids=["SIGKILL", "SIGTERM", "-n 2 group SIGKILL"],
)
def test_a_killed_pytest_leaves_no_container_or_network(
    docker_client, tmp_path: Path, sig: signal.Signals, workers: str, group: bool
) -> None:  # type: ignore[no-untyped-def]
    """With -n 2 the whole process group is killed (controller and workers), as a CI
    job's end does; the test also holds a function-scoped cluster there."""
    args = ["--pgstandby-backend=docker", "--pgstandby-image=pgstandby/postgres:15"]
    args += ["-n", workers]
    text = HOLDING_FRESH_TEST if group else HOLDING_TEST
    pid, killed_at = kill_holding_pytest(tmp_path, args, sig, {}, test_text=text, group=group)
    mine = {"label": [f"{LABEL}=1", f"{LABEL_OWNER_PID}={pid}"]}

    def leftovers() -> list[str]:
        containers = docker_client.containers.list(all=True, filters=mine, ignore_removed=True)
        networks = docker_client.networks.list(filters=mine)
        return [c.name for c in containers] + [n.name for n in networks]

    took = wait_for_none_left(leftovers, killed_at, "containers or networks")
    print(f"-n {workers} {sig.name}: nothing left {took:.2f} s after the kill")
