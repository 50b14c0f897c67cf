"""Explanation-conditioned emails: reasons from the customer's own values, in the prompt,
and a guardrail that refuses any number the customer did not have."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from serving.llm.guardrails import GuardrailConfig, check_email, fallback_email, unsupported_numbers
from serving.llm.prompts import build_prompt, format_completion
from serving.llm.reasons import churn_reasons, phrase
from serving.llm.service import EmailWriter
from serving.settings import LLMSettings
from tests.llm.test_llm_guardrails import ScriptedEngine

FACTS = {
    "customer_id": 42,
    "first_name": "Ana",
    "plan_name": "Plus",
    "region_name": "West",
    "orders_30d": 0.0,
    "orders_90d": 6.0,
    "orders_365d": 40.0,
    "support_tickets_30d": 3.0,
    "support_tickets_90d": 3.0,
    "sessions_7d": 2.0,
    "sessions_30d": 8.6,
    "recency_days": 45.0,
    "open_ticket": 1.0,
    "monthly_fee": 29.99,
}


@pytest.mark.parametrize(
    "feature,expected",
    [
        ("orders_30d", "orders fell"),  # 0 a day in 30 days vs 6 in 90
        ("orders_90d", "orders fell"),  # 6/90 a day vs 40/365
        ("support_tickets_30d", "support tickets rose"),  # all 3 of 90 days' tickets in the last 30
        ("sessions_7d", None),  # 2/7 vs 8.6/30: steady, nothing to say
        ("recency_days", "last order 45 days ago"),
        ("open_ticket", "has an open support ticket"),
        ("monthly_fee", "monthly fee 29.99"),
        ("email_opens_7d", None),  # no value: no reason
    ],
)
def test_a_reason_is_what_the_customers_own_values_support(
    feature: str, expected: str | None
) -> None:
    assert phrase(feature, FACTS) == expected


def test_reasons_are_the_strongest_churn_raisers_with_a_phrase_each_once() -> None:
    features = (
        "orders_30d",
        "orders_90d",
        "sessions_7d",
        "monthly_fee",
        "support_tickets_30d",
        "recency_days",
    )
    contributions = np.array([0.9, 0.8, 0.7, -1.5, 0.3, 0.1])
    got = churn_reasons(features, contributions, FACTS, k=3)
    # orders_90d repeats "orders fell", sessions_7d is steady, monthly_fee lowered the risk
    assert [r["phrase"] for r in got] == [
        "orders fell",
        "support tickets rose",
        "last order 45 days ago",
    ]
    assert [r["feature"] for r in got] == ["orders_30d", "support_tickets_30d", "recency_days"]
    assert all(r["contribution"] > 0 and r["model"] == "churn" for r in got)
    assert got[2]["value"] == 45.0
    assert churn_reasons(features, contributions, FACTS, k=1)[0]["phrase"] == "orders fell"
    assert churn_reasons(features, -np.abs(contributions), FACTS, k=3) == []


def test_reasons_reach_the_writers_prompt_and_only_when_given() -> None:
    engine = ScriptedEngine(
        format_completion(
            "Ana, 15% off is waiting",
            "Hi Ana, we noticed your orders fell. Here is 15% off your next order.",
        )
    )
    writer = EmailWriter(LLMSettings(), engine)
    scores = {"churn_probability": 0.8}
    asyncio.run(
        writer.write(
            FACTS, "discount_offer", {**scores, "reasons": ["orders fell", "support tickets rose"]}
        )
    )
    asyncio.run(writer.write(FACTS, "discount_offer", scores))
    (with_reasons,), _ = engine.calls[0]
    (without,), _ = engine.calls[1]
    assert "reasons: orders fell; support tickets rose" in with_reasons.splitlines()
    assert "reasons:" not in without
    assert without == build_prompt(
        FACTS, "discount_offer", scores
    )  # the corpus's format, unchanged
    assert with_reasons.replace("reasons: orders fell; support tickets rose\n", "") == without


CFG = GuardrailConfig()


@pytest.mark.parametrize(
    "body,ok",
    [
        ("Hi Ana, your last order was 45 days ago. Enjoy 15% off your next order.", True),
        ("Hi Ana, after 40 orders this year, enjoy 15% off your next order.", True),
        ("Hi Ana, your plan is 29.99 a month. Enjoy 15% off your next order.", True),
        ("Hi Ana, your last order was 46 days ago. Enjoy 15% off your next order.", False),
        ("Hi Ana, after 12 orders this year, enjoy 15% off your next order.", False),
        ("Hi Ana, you have 7 open tickets. Enjoy 15% off your next order.", False),
        ("Hi Ana, only 1,250 customers get 15% off your next order.", False),
    ],
)
def test_an_email_never_states_a_value_the_customer_did_not_have(body: str, ok: bool) -> None:
    reason = check_email("Ana, 15% off for you", body, FACTS, "discount_offer", CFG)
    assert (reason is None) is ok, reason
    if not ok:
        assert reason == "unsupported_number"


def test_the_writer_falls_back_when_a_draft_invents_a_number() -> None:
    draft = format_completion(
        "Ana, 15% off is waiting",
        "Hi Ana, your 12 orders fell to none. Here is 15% off your next order.",
    )
    writer = EmailWriter(LLMSettings(), ScriptedEngine(draft))
    result = asyncio.run(writer.write(FACTS, "discount_offer", {"reasons": ["orders fell"]}))
    assert result.fallback and result.fallback_reason == "unsupported_number"
    assert "12" not in result.body
    for action in ("discount_offer", "free_shipping", "content_digest", "winback_email"):
        subject, body = fallback_email(FACTS, action)
        assert (
            unsupported_numbers(f"{subject}\n{body}", FACTS, "") == [] or action == "discount_offer"
        )
        assert check_email(subject, body, FACTS, action, CFG) is None
