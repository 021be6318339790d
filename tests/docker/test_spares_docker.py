"""Copies made ahead (spares.py): on Docker, the next test's pair of a shape is restored
while the current test runs and handed to that test; none is made after the session's
last test of the fixture, and nothing is left."""

from __future__ import annotations

import json
from typing import Any

import pytest

from pytest_pgstandby.backends.containers import LABEL_CLUSTER, LABEL_OWNER_PID


def test_the_next_tests_pair_is_made_while_a_test_runs_none_after_the_last(
    pytester: pytest.Pytester, docker_client: Any
) -> None:
    pytester.makeconftest(
        """
        from pytest_pgstandby import factories

        fresh = factories.cluster(scope="function")
        """
    )
    pytester.makepyfile(
        f"""
        import json
        import os
        import docker
        import pytest
        from pytest_pgstandby import assert_streaming
        from pytest_pgstandby._wait import poll_until

        SEEN = []

        def clusters():
            client = docker.from_env()
            try:
                return {{
                    c.labels["{LABEL_CLUSTER}"]
                    for c in client.containers.list(
                        filters={{"label": "{LABEL_CLUSTER}"}}, ignore_removed=True
                    )
                    if c.labels.get("{LABEL_OWNER_PID}") == str(os.getpid())
                }}
            finally:
                client.close()

        @pytest.mark.parametrize("n", [1, 2, 3])
        def test_one(fresh, n):
            mine = fresh.backend.cluster
            assert_streaming(fresh.primary, fresh.standby)
            if SEEN:
                # the copy this test got is the one the earlier test saw being made
                assert mine == SEEN[-1]["ahead"]
            if n == 3:  # the session's last test of this fixture: nothing made ahead
                assert clusters() == {{mine}}
                SEEN.append({{"mine": mine, "ahead": None}})
            else:  # while this test runs, the next copy is made: a second cluster of ours
                ahead = poll_until(lambda: (clusters() - {{mine}}) or None,
                                   what="a copy ahead", timeout=60)
                SEEN.append({{"mine": mine, "ahead": ahead.pop()}})
            with open("seen.json", "w") as out:
                json.dump(SEEN, out)
        """
    )
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "--pgstandby-backend", "docker",
        "--pgstandby-image", "pgstandby/postgres:15", "--pgstandby-profile", "documented",
    )  # fmt: skip
    result.assert_outcomes(passed=3)
    seen = json.loads((pytester.path / "seen.json").read_text())
    made = {s["mine"] for s in seen} | {s["ahead"] for s in seen if s["ahead"]}
    assert len(made) == 3  # the built one and two copies, each handed out
    left = docker_client.containers.list(
        all=True, filters={"label": LABEL_CLUSTER}, ignore_removed=True
    )
    assert not [c.name for c in left if c.labels[LABEL_CLUSTER] in made]
