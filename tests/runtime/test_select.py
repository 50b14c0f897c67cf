"""config.pbtxt chooses the runtime; ONNX Runtime serves whenever the compiled one cannot."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import numpy as np
import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc

from model_repo.training import churn, train_model
from serving.registry import ModelRegistry
from serving.repository import read_model
from serving.runtime import runtime_for
from serving.runtime.lleaves import LleavesRuntime
from serving.runtime.onnx import OnnxRuntime

from tests.trained_churn import Trained, feast_repo


def _set_runtime(model_dir: Path, runtime: str | None) -> None:
    path = model_dir / "config.pbtxt"
    cfg = text_format.Parse(path.read_text(), mc.ModelConfig())
    if runtime is None:
        del cfg.parameters["runtime"]
    else:
        cfg.parameters["runtime"].string_value = runtime
    path.write_text(text_format.MessageToString(cfg))


def _runtime(repo: Path, version: int) -> object:
    spec = read_model(repo, "churn")
    return runtime_for(spec, spec.versions[str(version)], threads=1)


def test_build_writes_the_choice_into_config(trained: Trained) -> None:
    text = (trained.models / "churn" / "config.pbtxt").read_text()
    assert 'key: "runtime"' in text and 'string_value: "lleaves"' in text
    spec = read_model(trained.models, "churn")
    assert spec.platform == "onnxruntime_onnx"  # still a Triton ONNX model: the parameter is ours
    assert spec.runtime == "lleaves"


def test_config_selects_the_runtime(trained: Trained, repo_copy: Path) -> None:
    v = trained.result.version
    assert isinstance(_runtime(repo_copy, v), LleavesRuntime)
    _set_runtime(repo_copy / "churn", None)
    assert read_model(repo_copy, "churn").runtime == "onnxruntime"
    assert isinstance(_runtime(repo_copy, v), OnnxRuntime)
    _set_runtime(repo_copy / "churn", "onnxruntime")
    assert isinstance(_runtime(repo_copy, v), OnnxRuntime)
    _set_runtime(repo_copy / "churn", "fil")
    with pytest.raises(ValueError, match="runtime 'fil'"):
        _runtime(repo_copy, v)


def test_registry_serves_through_the_chosen_runtime(trained: Trained) -> None:
    registry = ModelRegistry(trained.models, lambda spec, ver: runtime_for(spec, ver, 1))
    registry.load("churn")
    runtime = registry.get("churn")
    assert isinstance(runtime, LleavesRuntime) and runtime.ready
    assert runtime.predict({"features": trained.holdout[:3]})["probability"].shape == (3, 1)


@pytest.mark.parametrize(
    "damage", ["artifact_missing", "manifest_missing", "other_booster", "truncated"]
)
def test_falls_back_to_onnx_runtime(
    trained: Trained, repo_copy: Path, damage: str, caplog: pytest.LogCaptureFixture
) -> None:
    vdir = repo_copy / "churn" / str(trained.result.version)
    if damage == "artifact_missing":
        (vdir / "model.lleaves.o").unlink()
    elif damage == "manifest_missing":
        (vdir / "model.lleaves.json").unlink()
    elif damage == "other_booster":
        (vdir / "model.txt").write_text((vdir / "model.txt").read_text() + "\n")
    else:
        (vdir / "model.lleaves.o").write_bytes((vdir / "model.lleaves.o").read_bytes()[:1000])
    with caplog.at_level(logging.WARNING, logger="reengage"):
        rt = _runtime(repo_copy, trained.result.version)
    assert isinstance(rt, OnnxRuntime)
    assert "runtime lleaves unavailable" in caplog.text and "ONNX Runtime" in caplog.text
    rt.load()
    out = rt.predict({"features": trained.holdout[:5]})["probability"]
    assert out.shape == (5, 1)


def test_falls_back_when_the_package_is_absent(
    trained: Trained, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setitem(sys.modules, "lleaves", None)  # import lleaves -> ImportError
    with caplog.at_level(logging.WARNING, logger="reengage"):
        rt = _runtime(trained.models, trained.result.version)
    assert isinstance(rt, OnnxRuntime)
    assert "not importable" in caplog.text


def test_build_without_the_package_writes_an_onnx_only_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    store, labels = feast_repo(tmp_path)
    monkeypatch.setitem(sys.modules, "lleaves", None)
    with caplog.at_level(logging.WARNING, logger="reengage"):
        r = train_model(churn, store, labels, tmp_path / "models", params={"n_estimators": 5})
    vdir = tmp_path / "models" / "churn" / str(r.version)
    assert (vdir / "model.onnx").is_file() and (vdir / "model.txt").is_file()
    assert not (vdir / "model.lleaves.o").exists()
    assert r.metrics["compiled_runtime"] is None and "not compiled for lleaves" in caplog.text
    monkeypatch.delitem(sys.modules, "lleaves")
    with caplog.at_level(logging.WARNING, logger="reengage"):
        rt = _runtime(tmp_path / "models", r.version)
    assert isinstance(rt, OnnxRuntime) and "model.lleaves.o is missing" in caplog.text
    rt.load()
    assert np.all(
        np.isfinite(rt.predict({"features": np.zeros((2, 32), np.float32)})["probability"])
    )
