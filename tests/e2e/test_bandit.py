"""The bandit learns from /v1/feedback across two ingress replicas sharing one state."""

from __future__ import annotations

from collections import Counter

import httpx
import pytest

pytestmark = pytest.mark.e2e

BEST = "free_shipping"


def _round(client: httpx.Client, ids: list[int], replicas: set[str]) -> Counter:
    r = client.post("/v1/score", json={"customer_ids": ids})
    assert r.status_code == 200, r.text
    replicas.add(r.headers["x-reengage-replica"])
    body = r.json()
    chosen: Counter = Counter()
    for action, decision, reason in zip(body["action"], body["decision_id"], body["reason"]):
        if reason != "policy":
            continue
        chosen[action] += 1
        fb = client.post(
            "/v1/feedback", json={"decision_id": decision, "reward": 1.0 if action == BEST else 0.0}
        )
        assert fb.status_code == 200, fb.text
        replicas.add(fb.headers["x-reengage-replica"])
    return chosen


def test_feedback_moves_choices_toward_the_better_arm(
    app_url: str, admin_headers: dict[str, str]
) -> None:
    replicas: set[str] = set()
    with httpx.Client(base_url=app_url, timeout=60, headers=admin_headers) as client:
        first = _round(client, list(range(1001, 1301)), replicas)
        for k in range(1, 6):
            _round(client, list(range(1001 + 300 * k, 1301 + 300 * k)), replicas)
        last = _round(client, list(range(3101, 3401)), replicas)
    share_first = first[BEST] / sum(first.values())
    share_last = last[BEST] / sum(last.values())
    assert share_first < 0.45, first
    assert share_last > 0.7 and share_last > share_first + 0.3, (first, last)
    assert len(replicas) == 2  # both ingress replicas served and learned from one state


def test_feedback_errors(app_url: str, admin_headers: dict[str, str]) -> None:
    with httpx.Client(base_url=app_url, timeout=60, headers=admin_headers) as client:
        body = client.post("/v1/score", json={"customer_ids": [5001, 5002, 10**12]}).json()
        assert (
            body["action"][2] is None
            and body["decision_id"][2] is None
            and body["reason"][2] == "not_found"
        )
        decision = body["decision_id"][0]
        assert (
            client.post("/v1/feedback", json={"decision_id": decision, "reward": 1.0}).status_code
            == 200
        )
        again = client.post("/v1/feedback", json={"decision_id": decision, "reward": 1.0})
        assert again.status_code == 409 and again.json()["error"]["field"] == "decision_id"
        unknown = client.post(
            "/v1/feedback", json={"decision_id": "0123456789abcdef-0", "reward": 1.0}
        )
        assert unknown.status_code == 404
        bad = client.post("/v1/feedback", json={"decision_id": decision})
        assert bad.status_code == 422 and bad.json()["error"]["field"] == "reward"
