from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from serving.errors import ModelNotFound, ModelNotReady
from serving.registry import ModelRegistry

from tests.serving.conftest import FEATURES, write_version


def _predict(registry: ModelRegistry, version: str | None) -> float:
    x = np.array([[1.0, 2.0, 3.0]], dtype=np.float32)
    return float(registry.get("churn", version).predict({"features": x})["probability"][0, 0])


def test_default_is_newest_and_versions_differ(model_repo: Path) -> None:
    registry = ModelRegistry(model_repo)
    registry.load("churn")
    assert registry.get("churn").version.version == "2"
    expected_v1 = 1 / (1 + np.exp(-(1 - 2 + 1.5 + 0.1)))
    assert _predict(registry, "1") == pytest.approx(expected_v1, rel=1e-6)
    assert _predict(registry, None) == _predict(registry, "2") != _predict(registry, "1")


def test_reload_adds_new_version_and_keeps_old_runtimes(model_repo: Path) -> None:
    registry = ModelRegistry(model_repo)
    registry.load("churn")
    v1 = registry.get("churn", "1")
    write_version(model_repo / "churn", 3, np.array([0.0, 0.0, 1.0]), 0.0, FEATURES)
    registry.load("churn")
    assert registry.get("churn").version.version == "3"
    assert registry.get("churn", "1") is v1  # unchanged versions are not reloaded


def test_unload_and_index(model_repo: Path) -> None:
    registry = ModelRegistry(model_repo)
    registry.load("churn")
    states = {(r["name"], r["version"]): r["state"] for r in registry.index()}
    assert states[("churn", "2")] == "READY" and states[("engagement", "1")] == "UNAVAILABLE"
    registry.unload("churn")
    assert not registry.is_ready("churn")
    with pytest.raises(ModelNotReady, match="churn"):  # unloaded: 503 naming it, not 404
        registry.get("churn")
    with pytest.raises(ModelNotFound):
        registry.unload("nope")
