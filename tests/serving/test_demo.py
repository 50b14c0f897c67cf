"""The demo shows a written email: when the bandit picks no contact it forces an action and says
so."""

from __future__ import annotations

import json

import httpx
from rich.console import Console

from serving.demo import DEMO_ACTION, _reengage


def answer(action: str, written: bool, reason: str) -> dict:
    return {
        "customer_id": 1,
        "action": action,
        "reason": reason,
        "subject": "Hi" if written else None,
        "body": "We miss you, come back for 20% off." if written else None,
        "llm": {"backend": "transformers", "model": "m", "written": written, "fallback": False},
    }


def run(first: dict) -> tuple[list[dict], str]:
    sent: list[dict] = []

    def handler(request: httpx.Request) -> httpx.Response:
        doc = json.loads(request.content)
        sent.append(doc)
        return httpx.Response(
            200, json=first if "action" not in doc else answer(doc["action"], True, "forced")
        )

    console = Console(record=True, width=200)
    with httpx.Client(transport=httpx.MockTransport(handler), base_url="http://app") as client:
        _reengage(client, 1, console)
    return sent, console.export_text()


def test_no_contact_is_followed_by_a_forced_action_and_the_email_is_shown() -> None:
    sent, text = run(answer("no_contact", False, "holdout"))
    assert sent == [{"customer_id": 1}, {"customer_id": 1, "action": DEMO_ACTION}]
    assert "the bandit chose action=no_contact" in text and f"Forcing action={DEMO_ACTION}" in text
    assert "reason=forced" in text and "We miss you" in text


def test_a_contact_action_is_shown_as_the_bandit_chose_it() -> None:
    sent, text = run(answer("discount_offer", True, "policy"))
    assert (
        sent == [{"customer_id": 1}] and "action=discount_offer" in text and "We miss you" in text
    )
