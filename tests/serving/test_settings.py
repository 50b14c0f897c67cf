from __future__ import annotations

from pathlib import Path

import pytest

from serving.settings import Settings, load_settings


def test_env_overrides_nested(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REENGAGE_FEATURES__BACKEND", "redis")
    monkeypatch.setenv("REENGAGE_SERVER__PORT", "8123")
    s = Settings()
    assert s.features.backend == "redis" and s.server.port == 8123
    assert s.features.yaml_file.name == "feature_store.redis.yaml"


def test_explicit_overrides_win_over_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REENGAGE_SERVER__PORT", "8123")
    s = load_settings({"server": {"port": 9001}, "features": {"backend": "embedded"}})
    assert s.server.port == 9001


def test_paths_are_absolute_and_unknown_keys_rejected(tmp_path: Path) -> None:
    s = load_settings({"data_dir": "rel/data"})
    assert s.data_dir.is_absolute() and s.bandit.state_path == s.data_dir / "bandit"
    with pytest.raises(Exception, match="typo"):
        load_settings({"server": {"typo": 1}})
