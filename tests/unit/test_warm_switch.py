"""When warm Docker kits are made (backends/docker_warm.enabled): on by default, but not for
an ssh:// daemon, where every API call is an ssh session; PGSTANDBY_WARM decides when set."""

from __future__ import annotations

import pytest

from pytest_pgstandby.backends.docker_warm import enabled


@pytest.mark.parametrize(
    ("warm", "daemon", "made"),
    [
        (None, "unix:///var/run/docker.sock", True),
        (None, "tcp://10.213.7.2:2375", True),
        (None, "ssh://build-host", False),
        ("1", "ssh://build-host", True),
        ("0", "unix:///var/run/docker.sock", False),
        ("off", "tcp://10.213.7.2:2375", False),
        ("yes", "unix:///var/run/docker.sock", True),
    ],
)
def test_kits_are_on_but_for_an_ssh_daemon_unless_asked(
    monkeypatch: pytest.MonkeyPatch, warm: str | None, daemon: str, made: bool
) -> None:
    monkeypatch.setenv("DOCKER_HOST", daemon)
    if warm is None:
        monkeypatch.delenv("PGSTANDBY_WARM", raising=False)
    else:
        monkeypatch.setenv("PGSTANDBY_WARM", warm)
    assert enabled() is made
