"""fresh= on the Docker backend: the first pair of a shape is built by the scripts and
snapshotted, each later one is restored into new containers (auto and snapshot); rebuild,
and the hardened profile under auto, run the scripts for every test."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize(
    ("options", "restored"),
    [
        (["--pgstandby-fresh", "snapshot"], True),
        (["--pgstandby-fresh", "auto"], True),
        (["--pgstandby-fresh", "rebuild"], False),
        (["--pgstandby-fresh", "auto", "--pgstandby-profile", "hardened"], False),
    ],
    ids=["snapshot", "auto", "rebuild", "auto-hardened"],
)
def test_fresh_on_docker(
    pytester: pytest.Pytester, docker_client, options: list[str], restored: bool
) -> None:  # type: ignore[no-untyped-def]
    pytester.makeconftest(
        """
        from pytest_pgstandby import factories

        fresh = factories.cluster(scope="function")
        """
    )
    pytester.makepyfile(
        f"""
        import pytest
        from pytest_pgstandby import assert_streaming

        @pytest.mark.parametrize("n", [1, 2, 3])
        def test_one(fresh, n):
            assert fresh.backend.name == "docker"
            assert_streaming(fresh.primary, fresh.standby)
            # each test's pair is its own: nothing of an earlier test's is there
            assert fresh.primary.query_value("SELECT to_regclass('mine') IS NULL") is True
            fresh.primary.execute("CREATE TABLE mine AS SELECT 1 AS x")
            restored = "restored from the snapshot" in fresh.standby.setup_output()
            assert restored is (n > 1 and {restored!r})
        """
    )
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "--pgstandby-backend", "docker",
        "--pgstandby-image", "pgstandby/postgres:15", *options,
    )  # fmt: skip
    result.assert_outcomes(passed=3)


def test_snapshot_with_the_hardened_profile_names_the_fix(
    pytester: pytest.Pytester, docker_client
) -> None:  # type: ignore[no-untyped-def]
    pytester.makeconftest(
        """
        from pytest_pgstandby import factories

        fresh = factories.cluster(scope="function", fresh="snapshot", profile="hardened")
        """
    )
    pytester.makepyfile("def test_one(fresh):\n    pass\n")
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "--pgstandby-backend", "docker",
        "--pgstandby-image", "pgstandby/postgres:15",
    )  # fmt: skip
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*fresh='snapshot' with profile='hardened'*rebuild*"])
