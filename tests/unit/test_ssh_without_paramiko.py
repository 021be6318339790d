"""An ssh:// daemon without paramiko, which docker-py needs for any ssh:// address (even
through the ssh command): one line naming the extra, not "no Docker daemon answers" nor
a ModuleNotFoundError (a fresh venv found it)."""

from __future__ import annotations

import os
import subprocess
import sys

SCRIPT = """
import sys
sys.modules["paramiko"] = None  # as where it is not installed: its import fails
from pytest_pgstandby.backends.containers import availability
from pytest_pgstandby.backends.engines import engine_address
from pytest_pgstandby.errors import DockerUnavailableError
print(availability("pgstandby/postgres:15"))
try:
    engine_address()
except DockerUnavailableError as exc:
    print("raised:", exc)
"""


def test_an_ssh_daemon_without_paramiko_names_the_extra() -> None:
    env = {**os.environ, "DOCKER_HOST": "ssh://nowhere.invalid"}
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    fix = "Fix: pip install 'pytest-pgstandby[ssh]' (or paramiko)"
    assert out.stdout.count(fix) == 2, out.stdout
    assert "docker-py reaches one only with paramiko, which is not installed" in out.stdout
