"""The lleaves runtime against ONNX Runtime on the same version, and the build's artifact."""

from __future__ import annotations

import json
import platform

import numpy as np
import pytest

from serving.repository import read_model
from serving.runtime import lleaves
from serving.runtime.lleaves import LleavesRuntime
from serving.runtime.onnx import OnnxRuntime

from tests.trained_churn import Trained

TOLERANCE = 1e-6


def _both(trained: Trained) -> tuple[LleavesRuntime, OnnxRuntime]:
    spec = read_model(trained.models, "churn")
    version = spec.versions[str(trained.result.version)]
    compiled, reference = (
        LleavesRuntime(spec, version),
        OnnxRuntime(spec, version, intra_op_threads=1),
    )
    compiled.load()
    reference.load()
    return compiled, reference


def test_predictions_equal_onnx_runtime_on_holdout_rows(trained: Trained) -> None:
    compiled, reference = _both(trained)
    x = trained.holdout
    assert len(x) > 500
    got = compiled.predict({"features": x})
    want = reference.predict({"features": x})
    assert list(got) == list(want) == ["probability"]
    assert got["probability"].shape == want["probability"].shape == (len(x), 1)
    assert got["probability"].dtype == want["probability"].dtype == np.float32
    np.testing.assert_allclose(got["probability"], want["probability"], atol=TOLERANCE, rtol=0)
    # the rows one at a time, as single-customer requests arrive
    for row in x[:20]:
        one = compiled.predict({"features": row[None, :]})["probability"]
        np.testing.assert_allclose(
            one,
            reference.predict({"features": row[None, :]})["probability"],
            atol=TOLERANCE,
            rtol=0,
        )


def test_predictions_equal_lightgbm(trained: Trained) -> None:
    """float64 sums, as LightGBM computes them: the compiled trees are the booster itself."""
    forest = lleaves.CompiledForest.load(trained.version_dir)
    assert forest.n_features == trained.holdout.shape[1]
    np.testing.assert_allclose(
        forest.predict(trained.holdout),
        trained.result.fitted.predict(trained.holdout),
        atol=1e-12,
        rtol=0,
    )


def test_build_writes_a_checked_portable_artifact(trained: Trained) -> None:
    vdir = trained.version_dir
    for name in ("model.onnx", "model.txt", "model.lleaves.o", "model.lleaves.json"):
        assert (vdir / name).is_file(), name
    manifest = json.loads((vdir / "model.lleaves.json").read_text())
    assert manifest["runtime"] == "lleaves" and manifest["artifact"] == "model.lleaves.o"
    if platform.machine() == "x86_64":
        assert manifest["target_cpu"] == "x86-64"  # the baseline: loads on any x86-64 server
    metrics = json.loads((vdir / "metrics.json").read_text())
    assert metrics["compiled_runtime"] == "lleaves"
    assert 0 <= metrics["compiled_max_abs_diff"] <= TOLERANCE
    assert lleaves.check_artifact(vdir) == manifest


def test_predict_before_load_is_not_ready(trained: Trained) -> None:
    from serving.errors import ModelNotReady

    spec = read_model(trained.models, "churn")
    rt = LleavesRuntime(spec, spec.versions[str(trained.result.version)])
    with pytest.raises(ModelNotReady):
        rt.predict({"features": trained.holdout[:1]})
    rt.load()
    assert rt.ready
    rt.unload()
    assert not rt.ready
