"""The split topology on the same Ray cluster: each component its own deployment behind
typed handle clients, answering exactly what the fused application answers."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest

pytestmark = pytest.mark.e2e

SPLIT_APP, PREFIX = "reengage_split", "/split"


@pytest.fixture(scope="module")
def split_url(app_url: str, app_overrides: dict[str, Any]) -> Iterator[str]:
    from ray import serve

    from serving.app import build_app
    from serving.server import wait_ready

    overrides = {
        **app_overrides,
        "llm": {**app_overrides.get("llm", {}), "enabled": False},
        "server": {**app_overrides["server"], "topology": "split", "ingress_replicas": 1},
    }
    serve.run(build_app(overrides), name=SPLIT_APP, route_prefix=PREFIX, blocking=False)
    url = app_url + PREFIX
    wait_ready(url, timeout_s=300)
    yield url
    serve.delete(SPLIT_APP)


def test_split_runs_each_component_as_its_own_deployment(split_url: str) -> None:
    from ray import serve

    deployments = set(serve.status().applications[SPLIT_APP].deployments)
    assert {
        "Ingress",
        "FeatureLookup",
        "Model_churn",
        "Model_engagement",
        "BanditRouter",
    } <= deployments


def test_split_scores_like_fused_and_learns_through_its_bandit(
    app_url: str, split_url: str, admin_headers: dict[str, str]
) -> None:
    ids = {"customer_ids": [11, 12, 13, 987_654_321]}
    fused = httpx.post(f"{app_url}/v1/score", json=ids, timeout=60).json()
    split = httpx.post(f"{split_url}/v1/score", json=ids, timeout=60)
    assert split.status_code == 200, split.text
    body = split.json()
    assert body["found"] == fused["found"] == [True, True, True, False]
    assert body["model_versions"] == fused["model_versions"]
    for key in ("churn_probability", "engagement_probability"):  # same models, same features
        np.testing.assert_allclose(np.array(body[key][:3]), np.array(fused[key][:3]), rtol=1e-6)
    assert body["decision_id"][3] is None and all(d for d in body["decision_id"][:3])
    reward = httpx.post(
        f"{split_url}/v1/feedback",
        json={"decision_id": body["decision_id"][0], "reward": 1.0},
        timeout=60,
        headers=admin_headers,
    )
    assert reward.status_code == 200, reward.text
    assert reward.json()["decision_id"] == body["decision_id"][0]


def test_split_serves_kserve_v2_and_errors_through_the_handles(split_url: str) -> None:
    meta = httpx.get(f"{split_url}/v2/models/churn", timeout=60).json()
    n = len(meta["parameters"]["features"])
    infer = httpx.post(
        f"{split_url}/v2/models/churn/infer",
        timeout=60,
        json={
            "inputs": [
                {
                    "name": meta["inputs"][0]["name"],
                    "datatype": "FP32",
                    "shape": [2, n],
                    "data": [0.0] * (2 * n),
                }
            ]
        },
    )
    assert infer.status_code == 200, infer.text
    assert infer.json()["outputs"][0]["shape"][0] == 2
    bad = httpx.post(f"{split_url}/v1/score", json={"customer_ids": ["x"]}, timeout=60)
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "customer_ids[0]"


def test_split_honours_consent_and_erases_through_its_handles(
    app_url: str, split_url: str, admin_headers: dict[str, str]
) -> None:
    import time

    customer = 6543  # no other e2e test uses it: it is erased here
    r = httpx.post(
        f"{split_url}/v1/consent",
        json={"customer_id": customer, "opted_out": True},
        timeout=60,
        headers=admin_headers,
    )
    assert r.status_code == 200, r.text
    time.sleep(1.0)
    for url in (split_url, app_url):  # one consent store: both applications honour it
        body = httpx.post(
            f"{url}/v1/score", json={"customer_ids": [customer, customer + 1]}, timeout=60
        ).json()
        assert body["reason"][0] == "opted_out" and body["action"][0] == "no_contact", body
        assert body["propensity"][0] == 1.0 and body["reason"][1] != "opted_out"
    erased = httpx.delete(
        f"{split_url}/v1/admin/customers/{customer}", timeout=60, headers=admin_headers
    )
    assert erased.status_code == 200, erased.text
    removed = erased.json()["removed"]
    assert removed["online_store"]["records"] == 3 and removed["decision_log"]["rows"] >= 2
    for url in (split_url, app_url):
        assert httpx.post(f"{url}/v1/score", json={"customer_ids": [customer]}, timeout=60).json()[
            "found"
        ] == [False]
