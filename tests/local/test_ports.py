"""Ports and directories of concurrent sessions (pytest-xdist workers) never collide: a
port is reserved across processes from the moment it is picked, not bind-then-release."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_pgstandby.backends import ports
from pytest_pgstandby.backends.ports import PORT_MARK, reserve_port


def test_a_reserved_port_is_not_handed_out_again_until_its_owner_dies(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    held = [reserve_port(tmp_path)[0] for _ in range(30)]
    assert len(set(held)) == 30
    assert {p.name for p in tmp_path.iterdir()} == {f"{PORT_MARK}{port}" for port in held}
    # the kernel offers a port held by a live session, then one whose owner died
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    live, stale = held[0], held[1]
    (tmp_path / f"{PORT_MARK}{stale}").write_text(f"{dead}\n")
    offers = iter([live, stale, stale])
    monkeypatch.setattr(ports, "free_port", lambda: next(offers))
    port, mark = reserve_port(tmp_path)
    assert port == stale, "the live reservation was skipped, the dead one reclaimed"
    # a mark names its owner by pid and start time (a reused pid is no owner)
    assert mark.read_text().split()[0] == str(os.getpid())
    assert (tmp_path / f"{PORT_MARK}{live}").read_text().split()[0] == str(os.getpid())


def test_two_xdist_workers_never_share_a_port_or_a_directory(
    pytester: pytest.Pytester, tmp_path: Path
) -> None:
    record = tmp_path / "record.jsonl"
    pytester.makeconftest(
        f"""
        import json, os
        from pytest_pgstandby import factories

        fresh = factories.cluster(scope="function", backend="local")

        def pytest_configure(config):
            config._record = {str(record)!r}
        """
    )
    pytester.makepyfile(
        f"""
        import json, os, pytest

        @pytest.mark.parametrize("i", range(6))
        def test_pair(fresh, i):
            with open({str(record)!r}, "a") as out:
                out.write(json.dumps({{
                    "worker": os.environ.get("PYTEST_XDIST_WORKER"),
                    "root": str(fresh.backend.root),
                    "ports": [n.port for n in fresh.nodes],
                }}) + "\\n")
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-n", "2")
    result.assert_outcomes(passed=6)
    seen = [json.loads(line) for line in record.read_text().splitlines()]
    assert {s["worker"] for s in seen} == {"gw0", "gw1"}
    ports = [p for s in seen for p in s["ports"]]
    roots = [s["root"] for s in seen]
    assert len(set(ports)) == len(ports) and len(set(roots)) == len(roots)
