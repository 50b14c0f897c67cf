"""/v1/reengage and the OpenAI-compatible completions on the CPU (transformers) backend."""

from __future__ import annotations

import httpx
import pytest
from openai import OpenAI

from serving.settings import Settings

pytestmark = pytest.mark.e2e


def _first_name(settings: Settings, customer_id: int) -> str:
    from feature_store.repo import load_store

    store = load_store(settings.features)
    row = store.get_online_features(
        features=["customer_contact:first_name"], entity_rows=[{"customer_id": customer_id}]
    ).to_dict()
    return row["first_name"][0]


def test_reengage_writes_an_email_for_the_chosen_action(app_url: str, settings: Settings) -> None:
    r = httpx.post(
        f"{app_url}/v1/reengage", json={"customer_id": 7, "action": "discount_offer"}, timeout=120
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["customer_id"] == 7 and body["found"] is True and body["action"] == "discount_offer"
    assert body["reason"] == "forced" and body["decision_id"] is None
    assert 0 <= body["churn_probability"] <= 1 and 0 <= body["engagement_probability"] <= 1
    assert body["subject"] and body["body"]
    assert _first_name(settings, 7) in body["subject"] + body["body"]
    assert "Unsubscribe" in body["body"]  # the configured footer is always appended
    assert body["llm"]["backend"] == "transformers" and body["llm"]["written"] is True
    assert isinstance(body["llm"]["fallback"], bool)


def test_reengage_with_the_bandits_action_and_edge_cases(app_url: str) -> None:
    with httpx.Client(base_url=app_url, timeout=120) as client:
        chosen = client.post("/v1/reengage", json={"customer_id": 11}).json()
        assert chosen["action"] in {
            "discount_offer",
            "free_shipping",
            "content_digest",
            "winback_email",
            "no_contact",
        }
        assert chosen["decision_id"] and 0 < chosen["propensity"] <= 1
        if chosen["action"] == "no_contact":
            assert chosen["subject"] is None and chosen["llm"]["written"] is False
        silent = client.post(
            "/v1/reengage", json={"customer_id": 12, "action": "no_contact"}
        ).json()
        assert (
            silent["subject"] is None
            and silent["body"] is None
            and silent["llm"]["written"] is False
        )
        unknown = client.post("/v1/reengage", json={"customer_id": 10**12})
        assert unknown.status_code == 404 and unknown.json()["error"]["field"] == "customer_id"
        bad = client.post("/v1/reengage", json={"customer_id": 7, "action": "spam"})
        assert bad.status_code == 422 and bad.json()["error"]["field"] == "action"


def test_openai_client_completions_and_streaming(app_url: str) -> None:
    client = OpenAI(base_url=f"{app_url}/v1", api_key="unused", max_retries=0, timeout=120)
    assert "email_writer" in [m.id for m in client.models.list().data]
    prompt = "segment: at-risk high-value\naction: free_shipping\nname: {first_name}\nsubject:"
    done = client.completions.create(
        model="email_writer", prompt=prompt, max_tokens=24, temperature=0
    )
    assert done.choices[0].text and done.usage.completion_tokens > 0
    chunks = list(
        client.completions.create(
            model="email_writer", prompt=prompt, max_tokens=24, temperature=0, stream=True
        )
    )
    text = "".join(c.choices[0].text for c in chunks if c.choices)
    assert (
        len(chunks) > 1 and text == done.choices[0].text
    )  # greedy: streaming equals the whole answer
    assert chunks[-1].choices[0].finish_reason in {"stop", "length"}


def test_completions_errors(app_url: str) -> None:
    r = httpx.post(
        f"{app_url}/v1/completions",
        json={"model": "email_writer", "prompt": "x", "n": 3},
        timeout=60,
    )
    assert r.status_code == 422 and r.json()["error"]["field"] == "n"
    r = httpx.post(f"{app_url}/v1/completions", json={"model": "nope", "prompt": "x"}, timeout=60)
    assert r.status_code in (404, 422) and r.json()["error"]["field"] == "model"
