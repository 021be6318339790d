"""Ports and directories of concurrent sessions (pytest-xdist workers) never collide: a
port is reserved across processes from the moment it is picked, not bind-then-release."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from pytest_pgstandby.backends import ports
from pytest_pgstandby.backends.ports import PORT_MARK, reserve_port
from tests.helpers import dead_pid


def test_a_reserved_port_is_not_handed_out_again_until_its_owner_dies(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    held = [reserve_port(tmp_path)[0] for _ in range(30)]
    assert len(set(held)) == 30
    assert {p.name for p in tmp_path.iterdir()} == {f"{PORT_MARK}{port}" for port in held}
    # the kernel offers a port held by a live session, then one whose owner died
    dead = dead_pid()
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
    """Clusters alive at the same time, in two workers, hold distinct ports and
    directories. A port released by a finished cluster may be handed out again (the
    kernel picks), so what is checked is the live set: each cluster adds its ports to
    it under a lock, finding none of them there, and takes them out before it closes."""
    record = tmp_path / "record.jsonl"
    live = tmp_path / "live.json"
    live.write_text("[]")
    pytester.makeconftest(
        f"""
        import contextlib, fcntl, json, os, pytest
        from pytest_pgstandby import factories

        fresh = factories.cluster(scope="function", backend="local")

        @contextlib.contextmanager
        def locked():
            with open({str(live)!r}, "r+") as f:
                fcntl.flock(f, fcntl.LOCK_EX)
                held = set(json.load(f))
                yield held
                f.seek(0)
                f.truncate()
                json.dump(sorted(held), f)

        @pytest.fixture
        def held(fresh):
            mine = {{n.port for n in fresh.nodes}}
            with locked() as held:
                clash = mine & held
                held |= mine
            with open({str(record)!r}, "a") as out:
                out.write(json.dumps({{
                    "worker": os.environ.get("PYTEST_XDIST_WORKER"),
                    "root": str(fresh.backend.root),
                    "ports": sorted(mine),
                    "clash": sorted(clash),
                }}) + "\\n")
            yield fresh
            with locked() as held:
                held -= mine
        """
    )
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.parametrize("i", range(6))
        def test_pair(held, i):
            assert held.primary.execute("select 1") == [(1,)]
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-n", "2")
    result.assert_outcomes(passed=6)
    seen = [json.loads(line) for line in record.read_text().splitlines()]
    assert {s["worker"] for s in seen} == {"gw0", "gw1"}
    assert all(len(s["ports"]) == 2 for s in seen), seen
    assert [s["clash"] for s in seen] == [[]] * 6, seen
    roots = [s["root"] for s in seen]
    assert len(set(roots)) == len(roots)
