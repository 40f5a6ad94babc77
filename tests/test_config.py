"""Settings: the environment, corral.toml files, and paths as users type them."""

from __future__ import annotations

from pathlib import Path

import pytest

from corral.config import Settings, load_settings


def test_a_tilde_in_home_is_expanded(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("CORRAL_HOME", "~/corral-home")
    assert Settings().home == tmp_path / "corral-home"
    assert load_settings("~/other").home == tmp_path / "other"


def test_the_toml_in_the_chosen_home_is_read(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CORRAL_HOME", raising=False)
    monkeypatch.delenv("CORRAL_PORT", raising=False)
    home = tmp_path / "team"
    home.mkdir()
    (home / "corral.toml").write_text("port = 9123\nstaging_grace_seconds = 5\n")
    settings = load_settings(home)
    assert (settings.port, settings.staging_grace_seconds) == (9123, 5)
    monkeypatch.setenv("CORRAL_PORT", "9999")
    assert load_settings(home).port == 9999  # the environment overrides the file


def test_defaults_derive_from_the_home(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    assert settings.resolved_database_url == f"sqlite:///{tmp_path / 'corral.db'}"
    assert settings.resolved_artifact_url == str(tmp_path / "artifacts")
    assert settings.resolved_cache_dir == tmp_path / "cache"
