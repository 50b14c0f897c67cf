"""/v1/explain, /v1/score with ``explain`` and /v1/reengage with reasons, on the real app.

The e2e workspace is built by ``reengage build``'s own code (``run_build``), so these
versions carry the explainers the build writes; the features are Feast's.
"""

from __future__ import annotations

import httpx
import numpy as np
import pytest

from serving.llm.guardrails import unsupported_numbers
from serving.protocol.v1 import ExplainResponse, ReengageResponse, ScoreResponse
from serving.settings import Settings
from tests.e2e.test_score import feast_matrix

pytestmark = pytest.mark.e2e


def test_explain_answers_both_models_adding_up_to_the_scores(
    app_url: str, settings: Settings
) -> None:
    ids = [3, 10**12, 5, 8, 13]
    with httpx.Client(base_url=app_url, timeout=60) as client:
        r = client.post("/v1/explain", json={"customer_ids": ids, "top_k": 1000})
        assert r.status_code == 200, r.text
        body = ExplainResponse.model_validate(r.json())
        score = client.post("/v1/score", json={"customer_ids": ids}).json()
    assert body.found == [True, False, True, True, True]
    for model in ("churn", "engagement"):
        block = getattr(body, model)
        assert block.version == score["model_versions"][model] and block.output == "log_odds"
        assert block.contributions[1] is None and block.base_value[1] is None
        rows = [i for i, f in enumerate(body.found) if f]
        z = np.array(
            [
                block.base_value[i] + sum(c.contribution for c in block.contributions[i])
                for i in rows
            ]
        )
        p = np.array([score[f"{model}_probability"][i] for i in rows])
        np.testing.assert_allclose(1 / (1 + np.exp(-z)), p, atol=2e-6, rtol=0)
        features = [c.feature for c in block.contributions[0]]
        x, _ = feast_matrix(
            settings, [ids[0]], features
        )  # the values are Feast's, feature by feature
        np.testing.assert_allclose([c.value for c in block.contributions[0]], x[0], rtol=1e-6)


def test_score_with_explain_carries_top_k_blocks(app_url: str) -> None:
    r = httpx.post(
        f"{app_url}/v1/score", json={"customer_ids": [21, 22, 10**12], "explain": 3}, timeout=60
    )
    assert r.status_code == 200, r.text
    body = ScoreResponse.model_validate(r.json())
    assert body.explanations is not None
    for block in (body.explanations.churn, body.explanations.engagement):
        assert [len(c) if c is not None else None for c in block.contributions] == [3, 3, None]
        sizes = [abs(c.contribution) for c in block.contributions[0]]
        assert sizes == sorted(sizes, reverse=True)
    plain = httpx.post(f"{app_url}/v1/score", json={"customer_ids": [21]}, timeout=60).json()
    assert "explanations" not in plain
    bad = httpx.post(f"{app_url}/v1/explain", json={"customer_ids": [21], "top_k": 0}, timeout=60)
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "top_k"


def test_reengage_with_explain_gives_the_writer_reasons_and_states_no_foreign_number(
    app_url: str,
) -> None:
    r = httpx.post(
        f"{app_url}/v1/reengage",
        json={"customer_id": 7, "action": "discount_offer", "explain": 3},
        timeout=120,
    )
    assert r.status_code == 200, r.text
    body = ReengageResponse.model_validate(r.json())
    assert body.reasons is not None and 1 <= len(body.reasons) <= 3
    assert all(
        reason.model == "churn" and reason.contribution > 0 and reason.phrase
        for reason in body.reasons
    )
    sizes = [reason.contribution for reason in body.reasons]
    assert sizes == sorted(sizes, reverse=True)
    assert body.subject and body.body
    # every number of the email (footer aside) is one of this customer's values or the offer's
    everything = httpx.post(
        f"{app_url}/v1/explain", json={"customer_ids": [7], "top_k": 1000}, timeout=60
    ).json()
    facts = {
        "customer_id": 7,
        **{
            f"{m}:{c['feature']}": c["value"]
            for m in ("churn", "engagement")
            for c in everything[m]["contributions"][0]
        },
    }
    text = body.subject + "\n" + body.body.rsplit("\n\n", 1)[0]
    assert unsupported_numbers(text, facts, "15% off your next order") == []
    without = httpx.post(
        f"{app_url}/v1/reengage", json={"customer_id": 7, "action": "discount_offer"}, timeout=120
    ).json()
    assert without.get("reasons") is None
