"""Warm kits (backends/docker_warm.py): the third and later Docker clusters of one shape in
a process start from containers made ahead, and are the clusters the scripts build."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime
from typing import Any

import pytest

from pytest_pgstandby import (
    Node,
    Settings,
    assert_streaming,
    start_cluster,
)
from pytest_pgstandby.backends import docker_warm
from pytest_pgstandby.backends.containers import LABEL_CLUSTER
from pytest_pgstandby.backends.docker import DockerBackend
from tests.helpers import passes_every_helper

pytestmark = pytest.mark.docker


@pytest.fixture
def shape(docker_client: Any, pgstandby_settings: Settings, monkeypatch) -> Iterator[Settings]:  # type: ignore[no-untyped-def]
    """Settings no other test builds (the timeout is part of a kit's key), kits on, and
    none left by this test."""
    monkeypatch.setenv("PGSTANDBY_WARM", "1")
    yield replace(pgstandby_settings, backend="docker", profile="documented", timeout=59.5)
    docker_warm.drain()


def _labelled(client: Any, label: str) -> dict[str, list[str]]:
    """The names of what carries ``label``: containers (with their state), networks,
    volumes."""
    found = {"label": label}
    return {
        "containers": [
            c.name for c in client.containers.list(all=True, filters=found, ignore_removed=True)
        ],
        "networks": [n.name for n in client.networks.list(filters=found)],
        "volumes": [v.name for v in client.volumes.list(filters=found)],
    }


def _created(handle: Any) -> float:
    """When the daemon created a node's container (a time.time())."""
    handle.wrapped.reload()
    head, _, frac = handle.wrapped.attrs["Created"].rstrip("Z").partition(".")
    return datetime.fromisoformat(f"{head}.{(frac + '000000')[:6]}+00:00").timestamp()


def _key(settings: Settings) -> Any:
    """The key a kit for ``settings`` is kept under (in this environment)."""
    return docker_warm._full((settings.docker_image, settings.timeout, None, False, None))


def _pending(settings: Settings) -> DockerBackend:
    """The kit made ahead for ``settings``, once it is made (it stays pending)."""
    with docker_warm._LOCK:
        assert _key(settings) in docker_warm._KITS, "no kit was begun for these settings"
        future = docker_warm._KITS[_key(settings)]
    return future.result(timeout=120)


def test_the_third_cluster_of_a_shape_starts_warm_and_passes_every_helper(
    docker_client: Any, shape: Settings
) -> None:
    with start_cluster(shape) as first:
        first_id = first.backend.cluster
    with docker_warm._LOCK:  # a shape built once is not worth a kit
        assert _key(shape) not in docker_warm._KITS
    with start_cluster(shape) as second:
        kit = _pending(shape)  # begun once the second was built, while it is in use
        assert kit.cluster not in (first_id, second.backend.cluster)
        held = _labelled(docker_client, f"{LABEL_CLUSTER}={kit.cluster}")
        assert sorted(held["containers"]) == [
            kit.container_name(n) for n in ("primary", "standby1")
        ]
        ours = _labelled(docker_client, f"{LABEL_CLUSTER}={second.backend.cluster}")
        for kind in ("containers", "networks", "volumes"):
            assert held[kind] and not set(held[kind]) & set(ours[kind]), kind
        # a held container runs no server, nor any step of the procedure
        for node in kit.held.values():
            assert node.tc.get_wrapped_container().logs() == b""
    asked = time.time()
    with start_cluster(shape) as third:
        assert third.backend is kit
        assert all(_created(node.handle) < asked for node in third.nodes)
        primary, standby = third.primary, third.standby
        passes_every_helper(primary, standby, "warm")
        # the whole of each script ran after the call: nothing of the hold is in its output
        setup = standby.setup_output()
        assert setup.startswith("Starting standby setup...")
        assert "base backup completed" in setup and "Starting standby server" in setup
        assert "setup-primary.sh" in primary.setup_output()
        # a container restart (reclone) runs the script at once: the hold was for once
        standby.reclone()
        assert_streaming(primary, standby)
        assert standby.setup_output().count("Starting standby setup...") == 2  # both runs
        fourth = _pending(shape)  # the next shape's kit, made while this one is in use
    docker_warm.drain()
    for cluster_id in (first_id, kit.cluster, fourth.cluster):
        left = _labelled(docker_client, f"{LABEL_CLUSTER}={cluster_id}")
        assert left == {"containers": [], "networks": [], "volumes": []}, cluster_id


def test_a_held_container_unlike_the_one_asked_for_is_replaced(
    docker_client: Any, shape: Settings
) -> None:
    """A kit is used only for the very container a call would make: here the plan held a
    standby that streams through a slot, and the call asks for one without."""
    backend = DockerBackend(shape.docker_image, shape.timeout)
    try:
        backend.hold_ahead([("primary", None, None), ("standby1", "primary", "standby1")], bool)
        held = {name: node.wrapped.id for name, node in backend.held.items()}
        asked = time.time()
        primary = backend.create_primary("primary")
        standby = backend.create_standby("standby1", primary)
        assert primary.wrapped.id == held["primary"]  # the same call as the plan's: taken
        assert standby.wrapped.id != held["standby1"] and _created(standby) > asked
        assert held["standby1"] not in [
            c.id for c in docker_client.containers.list(all=True, ignore_removed=True)
        ]
        assert "primary_slot_name" not in " ".join(standby.wrapped.attrs["Config"]["Env"])
        Node(standby).poll_query_until("SELECT status FROM pg_stat_wal_receiver", "streaming")
    finally:
        backend.close()
    left = _labelled(docker_client, f"{LABEL_CLUSTER}={backend.cluster}")
    assert left == {"containers": [], "networks": [], "volumes": []}


def test_no_kit_with_kits_off(docker_client: Any, shape: Settings, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("PGSTANDBY_WARM", "0")
    made = []
    for _ in range(3):
        with start_cluster(shape) as cluster:
            made.append(cluster.backend.cluster)
            assert all(node.handle.wrapped.attrs["Config"]["Entrypoint"][:2] != ["bash", "-c"]
                       or "pgstandby-hold" not in node.handle.wrapped.attrs["Config"]["Entrypoint"]
                       for node in cluster.nodes)  # fmt: skip
    with docker_warm._LOCK:
        assert _key(shape) not in docker_warm._KITS


def test_a_function_scoped_rebuild_takes_each_next_pair_warm_and_none_after_the_last(
    pytester: pytest.Pytester, docker_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The factory knows which test asks for the fixture again (as for its spares): the
    next pair is made ahead from the first build on, and none after the last."""
    monkeypatch.setenv("PGSTANDBY_WARM", "1")
    pytester.makeconftest(
        """
        from pytest_pgstandby import factories

        fresh = factories.cluster(scope="function", fresh="rebuild")
        """
    )
    pytester.makepyfile(
        """
        import pytest
        from pytest_pgstandby import assert_streaming
        from pytest_pgstandby.backends import docker_warm

        def warm(cluster):
            return ["pgstandby-hold" in n.handle.wrapped.attrs["Config"]["Entrypoint"]
                    for n in cluster.nodes]

        @pytest.mark.parametrize("n", [1, 2, 3])
        def test_one(fresh, n):
            assert_streaming(fresh.primary, fresh.standby)
            assert warm(fresh) == [n > 1, n > 1]
            with docker_warm._LOCK:
                assert len(docker_warm._KITS) == (0 if n == 3 else 1)
        """
    )
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "--pgstandby-backend", "docker",
        "--pgstandby-image", "pgstandby/postgres:15", "--pgstandby-profile", "documented",
    )  # fmt: skip
    result.assert_outcomes(passed=3)


def test_a_held_container_gone_before_its_call_is_made_anew(
    docker_client: Any, shape: Settings
) -> None:
    """A kit's container removed from under it (by hand, or a daemon restart) cannot be
    released: the call makes its container as if there were no kit."""
    backend = DockerBackend(shape.docker_image, shape.timeout)
    try:
        backend.hold_ahead([("primary", None, None), ("standby1", "primary", None)], bool)
        gone, kept = (backend.held[n].wrapped.id for n in ("primary", "standby1"))
        docker_client.containers.get(gone).remove(force=True)
        primary = backend.create_primary("primary")
        standby = backend.create_standby("standby1", primary)  # its own is still there
        assert primary.wrapped.id != gone and standby.wrapped.id == kept
        Node(standby).poll_query_until("SELECT status FROM pg_stat_wal_receiver", "streaming")
    finally:
        backend.close()
    left = _labelled(docker_client, f"{LABEL_CLUSTER}={backend.cluster}")
    assert left == {"containers": [], "networks": [], "volumes": []}
