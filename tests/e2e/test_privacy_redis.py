"""Consent and erasure with ``state: redis``: two replicas' worth of the real HTTP app
(FastAPI, Feast on a private redis-server, ONNX models, the bandit on Redis) sharing one
Redis, driven through ASGI; no Ray (the Serve app composes the same components)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import numpy as np
import pytest

from serving.settings import load_settings
from tests.conftest import RedisServer
from tests.e2e.conftest import make_workspace

pytestmark = pytest.mark.redis
CUSTOMER = 321


@pytest.fixture(scope="module")
def redis_planes(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from serving.build import run_build
    from serving.components.bandit import BanditService
    from serving.components.features import FeatureLookup, model_feature_services
    from serving.components.models import ModelService
    from serving.dataplane import DataPlane
    from serving.privacy.consent import ConsentView
    from serving.privacy.pseudonym import pseudonym_key
    from serving.shared_state import open_shared_state

    root = tmp_path_factory.mktemp("privacy_redis")
    redis = RedisServer(root)
    redis.start()
    overrides = make_workspace(
        root,
        customers=600,
        state="redis",
        redis_url=redis.url,
        bandit={"holdout_share": 0.0, "epsilon": 1.0, "sync_interval_s": 0},
        privacy={"consent_refresh_s": 0.1},
        llm={"enabled": False},
    )
    settings = load_settings(overrides)
    run_build(
        settings, steps=("generate", "apply", "materialize", "train_churn", "train_engagement")
    )
    features = FeatureLookup(settings.features, model_feature_services(settings))
    models = {n: ModelService(n, settings.models) for n in ("churn", "engagement")}
    bandits = [BanditService(settings.bandit, pseudonym_key(settings.privacy)) for _ in range(2)]
    views = [ConsentView(open_shared_state(settings), 0.1) for _ in range(2)]  # one per replica
    planes = [
        DataPlane(settings, features, models, bandit=b, consent=v) for b, v in zip(bandits, views)
    ]
    yield planes, settings
    for b, v in zip(bandits, views):
        b.router.close()
        v.close()
    redis.stop()


def _client(plane: Any, token: str) -> httpx.AsyncClient:
    from serving.http import create_app

    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(plane), raise_app_exceptions=False),
        base_url="http://app",
        timeout=30,
        headers={"Authorization": f"Bearer {token}"},
    )


def test_consent_and_erasure_on_redis_reach_every_replica_and_survive_a_rebuild(
    redis_planes: Any,
) -> None:
    from feature_store.repo import load_store
    from serving.bandit.state import open_store
    from serving.build import run_build
    from serving.privacy.pseudonym import pseudonym_hex, pseudonym_key, pseudonyms
    from serving.security import ensure_admin_token

    planes, settings = redis_planes
    path, _ = ensure_admin_token(settings)
    token = path.read_text().strip()

    async def scenario() -> None:
        a, b = (_client(p, token) for p in planes)
        async with a, b:
            r = await a.post("/v1/consent", json={"customer_id": CUSTOMER, "opted_out": True})
            assert r.status_code == 200, r.text
            await asyncio.sleep(1.0)
            for client in (a, b):  # the other replica too, within a second
                got = (
                    await client.post("/v1/score", json={"customer_ids": [CUSTOMER, CUSTOMER + 1]})
                ).json()
                assert got["reason"] == ["opted_out", "policy"] and got["action"][0] == "no_contact"
            await a.post("/v1/consent", json={"customer_id": CUSTOMER, "opted_out": False})
            await asyncio.sleep(1.0)
            got = (await b.post("/v1/score", json={"customer_ids": [CUSTOMER]})).json()
            assert got["reason"] == ["policy"]
            erased = await b.delete(f"/v1/admin/customers/{CUSTOMER}")
            assert erased.status_code == 200, erased.text
            removed = erased.json()["removed"]
            assert removed["online_store"]["records"] == 3 and removed["decision_log"]["rows"] == 3
            for client in (a, b):
                assert (await client.post("/v1/score", json={"customer_ids": [CUSTOMER]})).json()[
                    "found"
                ] == [False]
                assert (await client.get(f"/v1/consent/{CUSTOMER}")).json()["suppressed"] is True

    asyncio.run(scenario())
    key = pseudonym_key(settings.privacy)
    store = open_store(settings.bandit)
    try:
        batches = store.read_log()[0]
        assert batches and not any(
            np.isin([pseudonyms(np.array([CUSTOMER]), key)[0], CUSTOMER], b.customer_ids).any()
            for b in batches
        )
        assert not store.r.exists(f"{store.prefix}:cap:{CUSTOMER}")  # type: ignore[attr-defined]
        held = store.r.hkeys("{reengage:shared}:suppression")  # type: ignore[attr-defined]
        assert pseudonym_hex(CUSTOMER, key).encode() in held
    finally:
        store.close()
    run_build(settings, steps=("materialize",), force=True)
    online = (
        load_store(settings.features)
        .get_online_features(
            features=["customer_contact:email", "customer_profile:tenure_days"],
            entity_rows=[{"customer_id": CUSTOMER}, {"customer_id": CUSTOMER + 1}],
        )
        .to_dict()
    )
    assert online["email"][0] is None and online["tenure_days"][0] is None
    assert online["email"][1] and online["tenure_days"][1] is not None
