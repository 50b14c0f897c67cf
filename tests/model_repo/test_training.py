"""Training and export: ONNX parity, Triton config, versioning, and AUC near the Bayes limit.

One module fixture builds a 20,000-customer Feast repo (16,000 train / 4,000 holdout
rows): enough for the AUC assertion to be meaningful, about 20-40 s on 2 cores.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pandas as pd
import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc

from feature_store.datagen.files import ensure, read_labels
from feature_store import repo as fr
from model_repo.training import (
    TrainResult,
    churn,
    common,
    engagement,
    export,
    train_churn,
    train_model,
)
from model_repo.training import train_engagement
from serving.settings import FeatureSettings

CUSTOMERS = 20_000
REPO_FILES = ("definitions.py", "feature_store.yaml", ".feastignore")


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("train")
    repo = root / "feature_store"
    repo.mkdir()
    for name in REPO_FILES:
        shutil.copy(Path(fr.__file__).parent / name, repo / name)
    ensure(repo / "data", CUSTOMERS, seed=7, snapshots=2)
    store = fr.load_store(FeatureSettings(repo_path=repo))
    fr.apply(store)
    labels = read_labels(repo / "data")
    models = root / "model_repo"
    results = {
        "churn": train_churn(store, labels, models),
        "engagement": train_engagement(store, labels, models),
    }
    return {"store": store, "labels": labels, "models": models, "results": results}


def _session(path: Path) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("name", ["churn", "engagement"])
def test_onnx_matches_training_library(env: dict[str, Any], name: str) -> None:
    r: TrainResult = env["results"][name]
    spec = churn if name == "churn" else engagement
    data = common.load_training_data(
        env["store"], spec.FEATURE_SERVICE, env["labels"], spec.LABEL, spec.P_COLUMN
    )
    x = data.test[0][:3000]
    sess = _session(env["models"] / name / str(r.version) / "model.onnx")
    got = sess.run(["probability"], {"features": x})[0]
    assert got.shape == (len(x), 1) and got.dtype == np.float32
    np.testing.assert_allclose(got[:, 0], r.fitted.predict(x), atol=1e-5, rtol=0)
    if name == "churn":  # the library's own API, not just our wrapper
        np.testing.assert_allclose(
            got[:, 0], r.fitted.clf.predict_proba(x)[:, 1], atol=1e-5, rtol=0
        )
        np.testing.assert_allclose(got[:, 0], r.fitted.booster.predict(x), atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    "name,n_features,service",
    [("churn", 32, "churn_model"), ("engagement", 24, "engagement_model")],
)
def test_model_contract_and_triton_config(
    env: dict[str, Any], name: str, n_features: int, service: str
) -> None:
    model_dir = env["models"] / name
    r: TrainResult = env["results"][name]
    sess = _session(model_dir / str(r.version) / "model.onnx")
    (inp,), (out,) = sess.get_inputs(), sess.get_outputs()
    assert (inp.name, inp.type, inp.shape[1]) == ("features", "tensor(float)", n_features)
    assert (out.name, out.type, out.shape[1]) == ("probability", "tensor(float)", 1)
    assert not isinstance(inp.shape[0], int)  # dynamic batch
    metrics = json.loads((model_dir / str(r.version) / "metrics.json").read_text())
    meta = sess.get_modelmeta().custom_metadata_map
    assert (
        meta["feature_names"].split(",") == metrics["features"]
        and len(metrics["features"]) == n_features
    )
    for key in (
        "holdout_auc",
        "holdout_logloss",
        "bayes_auc",
        "bayes_logloss",
        "features",
        "feature_service",
        "training_data_fingerprint",
        "code_fingerprint",
        "params",
        "n_train",
        "n_holdout",
        "trained_at",
    ):
        assert key in metrics
    assert (
        metrics["feature_service"] == service
        and metrics["n_train"] + metrics["n_holdout"] == CUSTOMERS
    )
    cfg = text_format.Parse((model_dir / "config.pbtxt").read_text(), mc.ModelConfig())
    assert (cfg.name, cfg.platform, cfg.max_batch_size) == (name, "onnxruntime_onnx", 10000)
    assert [(i.name, i.data_type, list(i.dims)) for i in cfg.input] == [
        ("features", mc.TYPE_FP32, [n_features])
    ]
    assert [(o.name, o.data_type, list(o.dims)) for o in cfg.output] == [
        ("probability", mc.TYPE_FP32, [1])
    ]
    # dynamic batching on; no queue delay: requests arriving during a run join the next batch
    assert (
        cfg.HasField("dynamic_batching") and cfg.dynamic_batching.max_queue_delay_microseconds == 0
    )
    assert cfg.version_policy.HasField("all")  # every version stays servable (v2 /versions/{v})
    assert cfg.parameters["feature_service"].string_value == service


@pytest.mark.parametrize("name", ["churn", "engagement"])
def test_holdout_auc_near_bayes_limit(env: dict[str, Any], name: str) -> None:
    m = env["results"][name].metrics
    assert m["bayes_auc"] > 0.7
    assert m["holdout_auc"] >= m["bayes_auc"] - 0.02, m
    assert m["holdout_logloss"] <= m["bayes_logloss"] + 0.03, m


def _digest(path: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(path.iterdir())}


def test_versions_follow_the_fingerprint(env: dict[str, Any]) -> None:
    store, labels, models = env["store"], env["labels"], env["models"]
    small = {"n_estimators": 10}
    first = train_model(churn, store, labels, models, name="churn_v", params=small)
    v1 = _digest(models / "churn_v" / str(first.version))
    same = train_model(churn, store, labels, models, name="churn_v", params=small)
    assert (
        same.reused and same.version == first.version and export.versions(models / "churn_v") == [1]
    )
    flipped = labels.copy()
    flipped.loc[flipped.index[:50], "churned"] = 1 - flipped["churned"].iloc[:50]
    changed = train_model(churn, store, flipped, models, name="churn_v", params=small)
    assert not changed.reused and changed.version == 2
    other = train_model(churn, store, flipped, models, name="churn_v", params={"n_estimators": 11})
    assert other.version == 3 and export.versions(models / "churn_v") == [1, 2, 3]
    assert _digest(models / "churn_v" / "1") == v1  # never overwritten
    assert not [p for p in (models / "churn_v").iterdir() if p.name.startswith(".")]
    fps = {export.read_metrics(models / "churn_v", v)["fingerprint"] for v in (1, 2, 3)}
    assert len(fps) == 3


def test_data_fingerprint_ignores_timestamps(env: dict[str, Any]) -> None:
    data = common.load_training_data(
        env["store"], "engagement_model", env["labels"], "engaged", "p_engaged"
    )
    shifted = env["labels"].assign(
        event_timestamp=env["labels"]["event_timestamp"] + pd.Timedelta(minutes=30)
    )
    again = common.load_training_data(
        env["store"], "engagement_model", shifted, "engaged", "p_engaged"
    )
    assert again.fingerprint() == data.fingerprint()
    assert common.holdout_mask(data.ids).mean() == pytest.approx(0.2, abs=0.02)


def test_write_version_never_reuses_a_number(tmp_path: Path) -> None:
    cfg = export.config_proto("m", 24, "engagement_model")
    model = engagement.mlp_to_onnx(
        engagement.EngagementModel(np.zeros(24), np.ones(24), engagement._net(24, [4])), 24
    )
    export.check_model(model, 24)
    assert export.write_version(tmp_path / "m", model, {"fingerprint": "a"}, cfg) == 1
    (tmp_path / "m" / "7").mkdir()
    (tmp_path / "m" / "7" / "model.onnx").write_bytes(b"x")
    assert export.write_version(tmp_path / "m", model, {"fingerprint": "b"}, cfg) == 8
    assert (tmp_path / "m" / "7" / "model.onnx").read_bytes() == b"x"
    assert (
        export.find_version(tmp_path / "m", "b") == 8
        and export.find_version(tmp_path / "m", "a") is None
    )
    onnx.checker.check_model(onnx.load(str(tmp_path / "m" / "8" / "model.onnx")))


def test_churn_version_keeps_its_booster_text_and_runtime_choice(env: dict[str, Any]) -> None:
    """model.txt beside model.onnx (what tree compilers read); config.pbtxt names its runtime."""
    import lightgbm as lgb

    r: TrainResult = env["results"]["churn"]
    vdir = env["models"] / "churn" / str(r.version)
    data = common.load_training_data(
        env["store"], churn.FEATURE_SERVICE, env["labels"], churn.LABEL, churn.P_COLUMN
    )
    x = data.test[0][:2000]
    booster = lgb.Booster(model_file=str(vdir / "model.txt"))
    np.testing.assert_array_equal(
        booster.predict(x), r.fitted.predict(x)
    )  # the very trees that were exported
    engagement_dir = env["models"] / "engagement" / str(env["results"]["engagement"].version)
    assert not (engagement_dir / "model.txt").exists()
    params = {
        name: text_format.Parse(
            (env["models"] / name / "config.pbtxt").read_text(), mc.ModelConfig()
        ).parameters
        for name in ("churn", "engagement")
    }
    assert params["churn"]["runtime"].string_value == "lleaves"
    assert "runtime" not in params["engagement"]  # the MLP stays on ONNX Runtime


def test_write_version_writes_extra_files_atomically(tmp_path: Path) -> None:
    cfg = export.config_proto("m", 24, "engagement_model")
    model = engagement.mlp_to_onnx(
        engagement.EngagementModel(np.zeros(24), np.ones(24), engagement._net(24, [4])), 24
    )
    v = export.write_version(
        tmp_path / "m", model, {"fingerprint": "a"}, cfg, files={"model.txt": b"trees"}
    )
    assert (tmp_path / "m" / str(v) / "model.txt").read_bytes() == b"trees"
    assert not [p for p in (tmp_path / "m").iterdir() if p.name.startswith(".tmp")]
