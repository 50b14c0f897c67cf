"""Redis down under /v1/score: a fast 503 naming the feature store, then recovery on its own.

Real Feast repository, real Redis (a private redis-server), real ONNX models; the HTTP
layer runs on FastAPI's TestClient (no Ray) so the outage can be staged precisely.
"""

from __future__ import annotations

import time

import pytest
from fastapi.testclient import TestClient

from serving.settings import load_settings
from tests.conftest import RedisServer
from tests.e2e.conftest import make_workspace

pytestmark = pytest.mark.redis


@pytest.fixture(scope="module")
def redis_app(tmp_path_factory: pytest.TempPathFactory):
    from serving.build import run_build
    from serving.dataplane import DataPlane
    from serving.components.features import FeatureLookup, model_feature_services
    from serving.http import create_app
    from serving.components.models import ModelService

    root = tmp_path_factory.mktemp("redis_ws")
    redis = RedisServer(root)
    redis.start()
    overrides = make_workspace(
        root, customers=600, features={"backend": "redis", "redis_url": redis.url, "timeout_s": 0.2}
    )
    settings = load_settings(overrides)
    run_build(
        settings, steps=("generate", "apply", "materialize", "train_churn", "train_engagement")
    )
    features = FeatureLookup(settings.features, model_feature_services(settings))
    models = {n: ModelService(n, settings.models) for n in ("churn", "engagement")}
    plane = DataPlane(
        settings.model_copy(
            update={"bandit": settings.bandit.model_copy(update={"enabled": False})}
        ),
        features,
        models,
    )
    with TestClient(create_app(plane), raise_server_exceptions=False) as client:
        yield client, redis
    redis.stop()


def test_redis_down_is_a_fast_503_naming_the_feature_store_and_recovers(redis_app) -> None:
    client, redis = redis_app
    ok = client.post("/v1/score", json={"customer_ids": [1, 2, 3]})
    assert ok.status_code == 200 and ok.json()["found"] == [True, True, True]

    redis.stop()
    from serving import metrics

    metrics.RECORDER.drain()
    start = time.perf_counter()
    down = client.post("/v1/score", json={"customer_ids": [1, 2, 3]})
    elapsed = time.perf_counter() - start
    assert down.status_code == 503
    counts, _ = metrics.RECORDER.drain()  # an expected state: counted as the 503 it answered
    assert counts.get(("reengage_requests_total", ("/v1/score", "503"))) == 1
    err = down.json()["error"]
    assert err["type"] == "dependency_unavailable" and "feature store" in err["message"]
    assert elapsed < 5  # fails fast (timeout 0.2 s), no hanging retries

    redis.start()  # same port, empty: the reader reconnects by itself
    back = client.post("/v1/score", json={"customer_ids": [1, 2, 3]})
    assert back.status_code == 200 and back.json()["found"] == [False, False, False]
