"""Scenario names -> locust user classes in ``loadtests/locustfile.py``.

Kept apart from the locustfile so that ``run.py`` (and the CLI) can list scenarios
without importing locust, which monkey-patches the process with gevent.
"""

from __future__ import annotations

from pathlib import Path

LOCUSTFILE = Path(__file__).with_name("locustfile.py")

SCENARIOS: dict[str, tuple[str, ...]] = {
    "score": ("ScoreUser",),  # POST /v1/score, batch of ids
    "v2": ("V2InferUser",),  # KServe v2 binary infer on the churn model
    "feedback": ("FeedbackUser",),  # score, then rewards for a share of decisions
    "reengage": ("ReengageUser",),  # one customer + LLM email (slow; needs the LLM)
    "mixed": ("ScoreUser", "V2InferUser", "FeedbackUser"),
    "all": ("ScoreUser", "V2InferUser", "FeedbackUser", "ReengageUser"),
}


def user_classes(scenario: str) -> tuple[str, ...]:
    try:
        return SCENARIOS[scenario]
    except KeyError:
        raise ValueError(
            f"unknown scenario {scenario!r}; choose one of {sorted(SCENARIOS)}"
        ) from None
