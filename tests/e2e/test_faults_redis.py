"""The features on Redis under faults: hung, killed and restarted, emptied.

The real HTTP application (FastAPI app, feature lookup, ONNX models) over a real Feast
repository on a private redis-server, driven concurrently through ASGI in one event
loop, so a frozen loop shows as a late /v2/health/live. No Ray: the fault and its
timing are staged exactly (the full Serve application gets the same components).
"""

from __future__ import annotations

import asyncio
import os
import signal
import time

import httpx
import pytest

from serving.settings import load_settings
from tests.conftest import RedisServer
from tests.e2e.conftest import make_workspace

pytestmark = pytest.mark.redis
TIMEOUT_S = 0.2  # features.timeout_s: the caller's deadline is twice it (connect + read)
BUDGET_S = 2 * TIMEOUT_S + 0.4  # ... plus scheduling slack on a shared 2-core machine


@pytest.fixture(scope="module")
def redis_plane(tmp_path_factory: pytest.TempPathFactory):
    from serving.build import run_build
    from serving.components.features import FeatureLookup, model_feature_services
    from serving.components.models import ModelService
    from serving.dataplane import DataPlane

    root = tmp_path_factory.mktemp("faults_ws")
    redis = RedisServer(root)
    redis.start()
    overrides = make_workspace(
        root,
        customers=600,
        features={"backend": "redis", "redis_url": redis.url, "timeout_s": TIMEOUT_S},
    )
    settings = load_settings(overrides)
    run_build(
        settings, steps=("generate", "apply", "materialize", "train_churn", "train_engagement")
    )
    settings = settings.model_copy(
        update={"bandit": settings.bandit.model_copy(update={"enabled": False})}
    )
    features = FeatureLookup(settings.features, model_feature_services(settings))
    features.health.interval_s = 0.1
    models = {n: ModelService(n, settings.models) for n in ("churn", "engagement")}
    yield DataPlane(settings, features, models), redis, settings
    redis.stop()


def run(coro):
    return asyncio.run(coro)


async def timed(
    client: httpx.AsyncClient, method: str, path: str, **kw
) -> tuple[httpx.Response, float]:
    start = time.perf_counter()
    r = await client.request(method, path, **kw)
    return r, time.perf_counter() - start


async def wait_ready(client: httpx.AsyncClient, want: bool, within_s: float = 5.0) -> float:
    start = time.perf_counter()
    while True:
        r = await client.get("/v2/health/ready")
        if (r.status_code == 200) == want:
            return time.perf_counter() - start
        assert time.perf_counter() - start < within_s, f"ready never became {want}: {r.status_code}"
        await asyncio.sleep(0.05)


def client_for(plane) -> httpx.AsyncClient:
    from serving.http import create_app

    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(plane), raise_app_exceptions=False),
        base_url="http://app",
        timeout=30,
    )


def test_hung_redis_every_answer_is_a_503_within_budget_and_the_loop_runs(redis_plane) -> None:
    plane, redis, _ = redis_plane

    async def scenario() -> None:
        async with client_for(plane) as client:
            assert (
                await client.post("/v1/score", json={"customer_ids": [1, 2]})
            ).status_code == 200
            await wait_ready(client, True)
            os.kill(redis.proc.pid, signal.SIGSTOP)
            try:
                scores = [
                    timed(client, "POST", "/v1/score", json={"customer_ids": [i, i + 1]})
                    for i in range(1, 61)
                ]
                lives = [timed(client, "GET", "/v2/health/live") for _ in range(5)]
                answers = await asyncio.gather(*scores, *lives)
                not_ready_after = await wait_ready(client, False, within_s=2.0)
            finally:
                os.kill(redis.proc.pid, signal.SIGCONT)
            for r, took in answers[:60]:
                assert r.status_code == 503, r.text
                err = r.json()["error"]
                assert (
                    err["type"] == "dependency_unavailable"
                    and "feature store (redis at" in err["message"]
                )
                assert took < BUDGET_S, f"503 after {took:.2f} s"
            for r, took in answers[60:]:
                assert r.status_code == 200 and took < BUDGET_S  # the event loop never froze
            assert not_ready_after < 2.0
            took = sorted(t for _, t in answers[:60])
            print(
                f"\nhung redis: 60 x 503 in p50 {took[30]:.3f} s, max {took[-1]:.3f} s; "
                f"/v2/health/live max {max(t for _, t in answers[60:]):.3f} s; "
                f"not ready after {not_ready_after:.3f} s"
            )
            await wait_ready(client, True)
            deadline = time.monotonic() + 5
            while (
                await client.post("/v1/score", json={"customer_ids": [1, 2]})
            ).status_code != 200:
                assert time.monotonic() < deadline, "no recovery after SIGCONT"
                await asyncio.sleep(0.05)

    run(scenario())


def test_redis_killed_then_restarted_empty_503s_then_not_ready_until_materialized(
    redis_plane,
) -> None:
    plane, redis, settings = redis_plane

    async def scenario() -> None:
        async with client_for(plane) as client:
            await wait_ready(client, True)
            redis.stop()
            r, took = await timed(client, "POST", "/v1/score", json={"customer_ids": [1, 2, 3]})
            assert (
                r.status_code == 503
                and "feature store" in r.json()["error"]["message"]
                and took < BUDGET_S
            )
            await wait_ready(client, False)
            redis.start()  # empty: answers again, but holds no features
            deadline = time.monotonic() + 5
            while (
                r := await client.post("/v1/score", json={"customer_ids": [1, 2, 3]})
            ).status_code != 200:
                assert time.monotonic() < deadline, r.text
                await asyncio.sleep(0.05)
            assert r.json()["found"] == [False, False, False]
            await asyncio.sleep(0.3)
            assert (await client.get("/v2/health/ready")).status_code == 503  # emptied: not ready

    run(scenario())

    from serving.build import run_build

    run_build(settings, steps=("materialize",), force=True)

    async def back() -> None:
        async with client_for(plane) as client:
            await wait_ready(client, True)
            assert (await client.post("/v1/score", json={"customer_ids": [1, 2, 3]})).json()[
                "found"
            ] == [True] * 3

    run(back())
