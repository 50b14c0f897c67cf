"""/v1/score end to end: the real app, against ONNX Runtime run directly on Feast's features."""

from __future__ import annotations

import concurrent.futures as cf
import json
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np
import onnxruntime as ort
import pytest

from serving.settings import Settings

pytestmark = pytest.mark.e2e


def feast_matrix(
    settings: Settings, ids: list[int], features: list[str]
) -> tuple[np.ndarray, np.ndarray]:
    """Feast's own get_online_features, in the model's column order; found = no nulls."""
    from feature_store.repo import load_store

    store = load_store(settings.features)
    refs = [f"{view}:{name}" for name in features for view in _view_of(store, name)]
    online = store.get_online_features(
        features=refs, entity_rows=[{"customer_id": i} for i in ids]
    ).to_dict()
    cols = [
        np.array([np.nan if v is None else v for v in online[name]], dtype=np.float32)
        for name in features
    ]
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
    metrics = json.loads(
        (Path(settings.models.repo_path) / model / version / "metrics.json").read_text()
    )
    return list(metrics["features"])


@pytest.mark.parametrize("n", [1, 5000])
def test_score_matches_onnx_runtime_on_feast_features(
    app_url: str, settings: Settings, n: int
) -> None:
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


def model_calls(model: str, rows_above: float) -> tuple[float, float]:
    """(runtime calls, calls of more than ``rows_above`` rows) recorded so far for
    ``model`` by every replica: the ``reengage_model_batch_rows`` histogram as Ray's
    metrics agent exports it. Counts only: the agent's ``_sum`` is rebuilt from bucket
    midpoints, not the rows observed."""
    import ray
    from prometheus_client.parser import text_string_to_metric_families

    calls = at_most = 0.0
    for node in ray.nodes():
        if not node["Alive"]:
            continue
        url = f"http://{node['NodeManagerAddress']}:{node['MetricsExportPort']}/metrics"
        for family in text_string_to_metric_families(httpx.get(url, timeout=10).text):
            if family.name != "ray_reengage_model_batch_rows":
                continue
            for sample in family.samples:
                if sample.labels.get("model") != model:
                    continue
                if sample.name.endswith("_count"):
                    calls += sample.value
                elif sample.name.endswith("_bucket") and float(sample.labels["le"]) == rows_above:
                    at_most += sample.value
    return calls, calls - at_most


def settled(
    read: Callable[[], tuple[float, float]], interval_s: float = 12.0, limit_s: float = 90.0
) -> tuple[float, float]:
    """``read()`` once two reads more than an export interval apart agree (every metric
    recorded so far has reached the agent)."""
    value, deadline = read(), time.monotonic() + limit_s
    while time.monotonic() < deadline:
        time.sleep(interval_s)
        value, previous = read(), value
        if value == previous:
            break
    return value


def test_concurrent_requests_share_model_calls_and_keep_their_rows(
    app_url: str, settings: Settings
) -> None:
    """Dynamic batching: under concurrent load, rows of several requests go into one ONNX
    Runtime call (seen in ``reengage_model_batch_rows``), and every answer still holds
    exactly its own customers' scores, as ONNX Runtime computes them on Feast's features.

    Calls merge when they reach the model within the batch window or while a runtime
    call runs, so the load is sustained for a few seconds rather than one burst (with no
    window, one burst of 24 requests was measured merging just once).
    """
    size, blocks, threads, load_s = 300, 24, 8, 6.0
    one_request = 500.0  # a histogram bucket bound: one request's 300 rows fit under it, two do not
    ids = list(range(1, 1 + blocks * size))
    version = httpx.get(f"{app_url}/v2/models/churn", timeout=30).json()["parameters"]["version"]
    x, found = feast_matrix(settings, ids, model_features(settings, "churn", version))
    assert found.all()  # so every request brings all its rows to the runtime call
    expected = onnx_direct(settings, "churn", version, x)
    calls_before, merged_before = settled(lambda: model_calls("churn", one_request))

    stop = threading.Event()

    def load(worker: int) -> list[tuple[int, int, dict]]:
        answers = []
        with httpx.Client(base_url=app_url, timeout=120) as client:
            k = worker
            while not stop.is_set():
                start = 1 + (k % blocks) * size
                r = client.post(
                    "/v1/score", json={"customer_ids": list(range(start, start + size))}
                )
                answers.append((start, r.status_code, r.json()))
                k += threads
        return answers

    with cf.ThreadPoolExecutor(threads) as pool:
        workers = [pool.submit(load, w) for w in range(threads)]
        time.sleep(load_s)
        stop.set()
        answers = [a for w in workers for a in w.result()]

    for start, status, body in answers:  # each answer holds its own rows, none from another request
        assert status == 200, body
        assert (
            body["customer_ids"] == list(range(start, start + size))
            and body["model_versions"]["churn"] == version
        )
        got = np.array(body["churn_probability"], dtype=np.float64)
        np.testing.assert_allclose(got, expected[start - 1 : start - 1 + size], rtol=0, atol=1e-6)
    deadline = time.monotonic() + 60  # replica metrics reach the agent some seconds later
    while model_calls("churn", one_request)[0] == calls_before and time.monotonic() < deadline:
        time.sleep(2)
    calls, merged = settled(lambda: model_calls("churn", one_request))
    calls, merged = calls - calls_before, merged - merged_before
    assert calls > 0, "no runtime call reached the metrics agent"
    assert merged >= 1, (
        f"{len(answers)} requests, {calls:.0f} runtime calls: none held two requests' rows"
    )
    assert calls < len(answers), f"{calls:.0f} runtime calls for {len(answers)} requests"
