"""Bad input a downstream project can give through its conftest and its options, answered
in one line that names the problem and the fix, with nothing of the user's touched
(docs/errors.md has the whole matrix)."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from pytest_pgstandby.binaries import REQUIRED


def test_a_bad_factory_scope_in_a_conftest_is_one_line_not_an_internalerror(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeconftest(
        """
        from pytest_pgstandby import factories

        cluster = factories.cluster(scope="bogus")
        """
    )
    pytester.makepyfile("def test_uses_it(cluster): pass")
    precious = pytester.path / "precious.txt"
    precious.write_text("keep")
    result = pytester.runpytest_subprocess()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    text = result.stdout.str() + result.stderr.str()
    assert "INTERNALERROR" not in text and "_cluster_fixture" not in text
    result.stderr.fnmatch_lines(
        [
            "E   pytest_pgstandby.errors.ConfigurationError: factories.cluster(scope='bogus'): "
            "not a pytest fixture scope. Fix: one of function, class, module, package, session."
        ]
    )
    assert precious.read_text() == "keep"


def _fake_bindir(where: Path, version: str) -> Path:
    """A directory that looks like PostgreSQL server binaries of ``version``: every
    program the harness needs, ``postgres --version`` and ``pg_config --version`` say
    the version, and any other use fails loudly (nothing may get that far)."""
    bindir = where / "bin"
    bindir.mkdir()
    for program in (*REQUIRED, "pg_config"):
        script = bindir / program
        script.write_text(
            "#!/bin/sh\n"
            'case "$1" in\n'
            f'  --version) echo "{program} (PostgreSQL) {version}" ;;\n'
            f'  *) echo "fake {program} {version} was run" >&2; exit 99 ;;\n'
            "esac\n"
        )
        script.chmod(script.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return bindir


def test_postgresql_older_than_12_is_refused_before_anything_runs(
    pytester: pytest.Pytester, tmp_path: Path
) -> None:
    bindir = _fake_bindir(tmp_path, "11.22")
    (bindir / "precious.txt").write_text("keep")
    before = sorted(p.name for p in bindir.iterdir())
    pytester.makepyfile("def test_pair(pgstandby_cluster): pass")
    result = pytester.runpytest_subprocess(
        f"--pgstandby-pg-bin={bindir}", "--pgstandby-backend=local"
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            f"ERROR: pytest-pgstandby: --pgstandby-pg-bin / PGSTANDBY_PG_BIN points at "
            f"PostgreSQL 11.22 in {bindir}, older than 12: the documented procedure writes "
            "standby.signal and primary_conninfo, which PostgreSQL reads from 12 on "
            "(recovery.conf before); nothing was started. Fix: point it at PostgreSQL 12 "
            "or newer*"
        ]
    )
    assert "was run" not in result.stderr.str(), "only --version may be asked"
    assert sorted(p.name for p in bindir.iterdir()) == before
