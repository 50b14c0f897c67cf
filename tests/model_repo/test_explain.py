"""Explainers as the build writes them: completeness on every holdout row, for both models.

The session fixture (conftest) trains churn (LightGBM, lleaves) and engagement (MLP) on an
8,000-customer Feast repo with the real training code, so the versions carry exactly
the explainer artifacts ``reengage build`` writes.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from model_repo.training import explain
from serving.errors import ExplainerUnavailable, status_and_body
from serving.repository import read_model
from serving.runtime import runtime_for
from serving.runtime.explain import OnnxGraphExplainer, TreeShapExplainer, explainer_for


def _version(built: dict[str, Any], name: str) -> Any:
    spec = read_model(built["models"], name)
    return spec, spec.versions[str(built["results"][name].version)]


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.asarray(p, np.float64)
    return np.log(p) - np.log1p(-p)


def test_churn_tree_shap_adds_up_to_the_served_log_odds_on_every_holdout_row(
    built: dict[str, Any],
) -> None:
    from serving.runtime.lleaves import CompiledForest

    spec, version = _version(built, "churn")
    x = built["holdout"]["churn"]
    assert len(x) > 1000
    explainer = explainer_for("churn", version)
    assert isinstance(explainer, TreeShapExplainer)
    got = explainer.explain(x)
    assert got.contributions.shape == (len(x), len(version.features))
    # the served computation: the compiled trees (float64 sums, before the float32 answer)
    served = _logit(CompiledForest.load(version.path).predict(x))
    np.testing.assert_allclose(
        got.base_value + got.contributions.sum(axis=1), served, atol=1e-4, rtol=0
    )
    # ... and the float32 probability the runtime answers (through the sigmoid)
    runtime = runtime_for(spec, version, 1)
    runtime.load()
    p = runtime.predict({"features": x})["probability"][:, 0]
    np.testing.assert_allclose(1 / (1 + np.exp(-got.log_odds)), p, atol=1e-6, rtol=0)
    assert np.ptp(got.base_value) < 1e-9  # one expected value for every row
    assert (np.abs(got.contributions) > 1e-3).sum(axis=1).mean() > 3  # not all on one feature


def test_engagement_deeplift_adds_up_to_the_served_log_odds_on_every_holdout_row(
    built: dict[str, Any],
) -> None:
    _, version = _version(built, "engagement")
    x = built["holdout"]["engagement"]
    explainer = explainer_for("engagement", version)
    assert isinstance(explainer, OnnxGraphExplainer)
    got = explainer.explain(x)
    # the served graph's own pre-sigmoid output, exposed as an extra output of model.onnx
    model = onnx.load(str(version.model_file))
    model.graph.output.append(helper.make_tensor_value_info("logit", TensorProto.FLOAT, [None, 1]))
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    served = sess.run(["logit"], {"features": x})[0][:, 0].astype(np.float64)
    total = got.base_value + got.contributions.sum(axis=1)
    np.testing.assert_allclose(total, served, atol=explain.COMPLETENESS_TOLERANCE, rtol=0)
    torch_logit = built["results"]["engagement"].fitted.logit(x)
    np.testing.assert_allclose(total, torch_logit, atol=explain.COMPLETENESS_TOLERANCE, rtol=0)
    # the documented baseline: x' = expm1(mu) scores the base value, with nothing to attribute
    graph = onnx.load(str(version.path / explain.EXPLAINER_FILE))
    mu = next(onnx.numpy_helper.to_array(t) for t in graph.graph.initializer if t.name == "mu")
    at_base = explainer.explain(np.expm1(mu).astype(np.float32))
    np.testing.assert_allclose(at_base.contributions, 0, atol=1e-5)
    np.testing.assert_allclose(at_base.log_odds, got.base_value[0], atol=1e-5)


def test_build_records_the_explainer_and_its_holdout_gap(built: dict[str, Any]) -> None:
    for name, method in (("churn", "tree_shap"), ("engagement", "deeplift_rescale")):
        info = built["results"][name].metrics["explainer"]
        assert info["method"] == method and info["output"] == "log_odds"
        assert (
            0 <= info["max_completeness_gap"] <= info["tolerance"] == explain.COMPLETENESS_TOLERANCE
        )


def test_a_version_without_an_explainer_is_refused_naming_it(
    built: dict[str, Any], tmp_path: Path
) -> None:
    _, version = _version(built, "engagement")
    bare = tmp_path / "engagement" / "9"
    bare.mkdir(parents=True)
    shutil.copy(version.model_file, bare / "model.onnx")
    with pytest.raises(ExplainerUnavailable) as info:
        explainer_for("engagement", type(version)("9", bare, bare / "model.onnx", version.metrics))
    status, body = status_and_body(info.value)
    assert status == 409 and body["error"]["type"] == "explainer_unavailable"
    assert "engagement" in body["error"]["message"] and "9" in body["error"]["message"]
