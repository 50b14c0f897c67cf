"""/v1/score end to end: the real app, against ONNX Runtime run directly on Feast's features."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import numpy as np
import onnxruntime as ort
import pytest

from serving.settings import Settings

pytestmark = pytest.mark.e2e


def feast_matrix(settings: Settings, ids: list[int], features: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Feast's own get_online_features, in the model's column order; found = no nulls."""
    from feature_store.repo import load_store

    store = load_store(settings.features)
    refs = [f"{view}:{name}" for name in features for view in _view_of(store, name)]
    online = store.get_online_features(features=refs, entity_rows=[{"customer_id": i} for i in ids]).to_dict()
    cols = [np.array([np.nan if v is None else v for v in online[name]], dtype=np.float32) for name in features]
    matrix = np.stack(cols, axis=1)
    return matrix, ~np.isnan(matrix).any(axis=1)


def _view_of(store, feature: str) -> list[str]:
    for view in store.list_feature_views():
        if any(f.name == feature for f in view.features):
            return [view.name]
    raise KeyError(feature)


def onnx_direct(settings: Settings, model: str, version: str, x: np.ndarray) -> np.ndarray:
    vdir = Path(settings.models.repo_path) / model / version
    session = ort.InferenceSession(str(vdir / "model.onnx"), providers=["CPUExecutionProvider"])
    return session.run(["probability"], {"features": x})[0].ravel()


def model_features(settings: Settings, model: str, version: str) -> list[str]:
    metrics = json.loads((Path(settings.models.repo_path) / model / version / "metrics.json").read_text())
    return list(metrics["features"])


@pytest.mark.parametrize("n", [1, 5000])
def test_score_matches_onnx_runtime_on_feast_features(app_url: str, settings: Settings, n: int) -> None:
    rng = np.random.default_rng(n)
    ids = rng.choice(np.arange(1, settings.data.customers + 1), size=n, replace=False).tolist()
    if n > 1:
        ids[-3:] = [10**12, 0, 10**12 + 1]  # unknown customers inside the batch
    r = httpx.post(f"{app_url}/v1/score", json={"customer_ids": ids}, timeout=60)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["customer_ids"] == ids
    for model, column in (("churn", "churn_probability"), ("engagement", "engagement_probability")):
        version = body["model_versions"][model]
        features = model_features(settings, model, version)
        x, found = feast_matrix(settings, ids, features)
        assert body["found"] == found.tolist()
        expected = onnx_direct(settings, model, version, x[found])
        got = np.array([body[column][i] for i in np.flatnonzero(found)], dtype=np.float64)
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)
        assert all(body[column][i] is None for i in np.flatnonzero(~found))
    ages = [a for a, f in zip(body["feature_age_s"], body["found"]) if f]
    assert all(0 <= a < 8 * 86400 for a in ages)


def test_score_rejects_bad_input_with_field(app_url: str) -> None:
    r = httpx.post(f"{app_url}/v1/score", json={"customer_ids": [1, "two"]}, timeout=30)
    assert r.status_code == 422
    assert r.json()["error"]["field"] == "customer_ids[1]"
    r = httpx.post(f"{app_url}/v1/score", json={"customer_ids": list(range(10_001))}, timeout=30)
    assert r.status_code == 422 and r.json()["error"]["field"] == "customer_ids"


def test_concurrent_requests_are_batched_and_answered_in_order(app_url: str) -> None:
    import concurrent.futures as cf

    def call(start: int) -> list[int]:
        ids = list(range(start, start + 50))
        return httpx.post(f"{app_url}/v1/score", json={"customer_ids": ids}, timeout=60).json()["customer_ids"]

    with cf.ThreadPoolExecutor(8) as pool:
        results = list(pool.map(call, range(1, 801, 50)))
    assert results == [list(range(s, s + 50)) for s in range(1, 801, 50)]
