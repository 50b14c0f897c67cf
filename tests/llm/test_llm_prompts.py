from __future__ import annotations

import pytest

from serving.errors import InvalidRequest
from model_repo.training import corpus
from serving.llm.prompts import (
    ACTIONS,
    BODY_MARK,
    SUBJECT_MARK,
    build_prompt,
    fill_slots,
    format_completion,
    parse_completion,
    segment,
)

FACTS = {
    "first_name": "Ana",
    "email": "ana@example.com",
    "plan_name": "Premium",
    "region_name": "West",
    "recency_days": 42.0,
    "orders_365d": 7.0,
    "spend_365d": 820.0,
    "tenure_days": 400.0,
}


@pytest.mark.parametrize(
    ("features", "expected"),
    [
        ({"churn_probability": 0.8, "spend_365d": 900, "recency_days": 30}, "at-risk high-value"),
        ({"churn_probability": 0.8, "spend_365d": 50, "recency_days": 200}, "lapsed low-value"),
        ({"churn_probability": 0.1, "spend_365d": 300}, "loyal mid-value"),
        ({"churn_probability": 0.3, "spend_365d": float("nan")}, "cooling low-value"),
        ({}, "at-risk low-value"),
    ],
)
def test_segment_from_scores_and_spend(features: dict, expected: str) -> None:
    assert segment(features) == expected


def test_prompt_carries_facts_scores_and_the_actions_offer() -> None:
    prompt = build_prompt(
        FACTS, "free_shipping", {"churn_probability": 0.83, "engagement_probability": 0.2}
    )
    for part in (
        "name: Ana",
        "plan: Premium",
        "region: West",
        "segment: at-risk high-value",
        "last order: 42 days ago",
        "orders this year: 7",
        "churn risk: 0.83",
        "### Action: free_shipping",
        ACTIONS["free_shipping"].offer,
    ):
        assert part in prompt
    assert prompt.endswith(SUBJECT_MARK)


def test_prompt_defaults_for_missing_or_null_facts() -> None:
    prompt = build_prompt({"first_name": None, "plan_name": " "}, "content_digest", {})
    assert "name: there" in prompt and "plan: standard" in prompt and "churn risk: 0.50" in prompt


def test_unknown_action_is_a_caller_error() -> None:
    with pytest.raises(InvalidRequest) as err:
        build_prompt(FACTS, "teleport", {})
    assert err.value.field == "action"


def test_completion_format_round_trips() -> None:
    text = format_completion("Ana, 15% off for you", "Hi Ana, enjoy it.")
    assert parse_completion(text) == ("Ana, 15% off for you", "Hi Ana, enjoy it.")
    assert parse_completion(" only a subject") == ("only a subject", "")
    assert parse_completion(f" S{BODY_MARK} B\n<END> trailing junk") == ("S", "B")


def test_corpus_is_deterministic_and_heldout_names_are_unseen() -> None:
    a, b = corpus.generate(50, seed=3), corpus.generate(50, seed=3)
    assert [e.prompt + e.completion for e in a] == [e.prompt + e.completion for e in b]
    held = corpus.generate(50, seed=3, heldout=True)
    assert not {e.first_name for e in held} & {e.first_name for e in corpus.generate(3000, seed=3)}
    for e in a:
        subject, body = parse_completion(e.completion)
        assert ACTIONS[e.action].keyword.lower() in subject.lower()
        assert "{first_name}" in subject and "{first_name}" in body  # delexicalised answers
        assert e.first_name in fill_slots(subject, e.facts)


def test_fill_slots_uses_facts_and_leaves_unknown_or_empty_slots() -> None:
    text = "Hi {first_name}, {recency_days} days, {orders_365d} orders, {plan_name}, {coupon}"
    filled = fill_slots(
        text, {"first_name": "Ana", "recency_days": 42.0, "orders_365d": 3, "plan_name": None}
    )
    assert filled == "Hi Ana, 42 days, 3 orders, {plan_name}, {coupon}"
