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


def test_one_settings_object_across_the_section_modules() -> None:
    """The package splits sections by concern, but holds one ``BaseSettings`` (the one
    object env and serve.yaml fill), every section reachable from it and importable from
    ``serving.settings``; the project root is the checkout, not the package folder."""
    import importlib
    import inspect
    import pkgutil

    from pydantic import BaseModel
    from pydantic_settings import BaseSettings

    import serving.settings as package

    modules = [
        importlib.import_module(f"serving.settings.{m.name}")
        for m in pkgutil.iter_modules(package.__path__)
    ]
    classes = {
        obj
        for module in modules
        for _, obj in inspect.getmembers(module, inspect.isclass)
        if obj.__module__ == module.__name__ and issubclass(obj, BaseModel)
    }
    assert [c for c in classes if issubclass(c, BaseSettings)] == [Settings]
    assert {c.__name__ for c in classes} <= set(package.__all__)
    sections = {f.annotation for f in Settings.model_fields.values()}
    assert {c for c in classes if c.__name__.endswith("Settings") and c is not Settings} - {
        package.RotationSettings
    } <= sections
    assert (package.project_root() / "serving" / "settings" / "__init__.py").is_file()
