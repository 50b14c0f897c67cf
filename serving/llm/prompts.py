"""Prompt format shared by training, serving and the guardrails.

One format everywhere: the corpus is written in it, the checkpoint learns it, the
service builds it from a customer's facts and parses the model's answer with it. The
markers are plain text (no added special tokens) so a real base model fine-tuned with
the same code needs no vocabulary change.

Answers are delexicalised: the model writes slots such as ``{first_name}`` and the
service fills them from the customer's facts (``fill_slots``). Names and numbers are
then exact, never hallucinated, and a small model need not learn to copy names it has
never seen; a slot that cannot be filled stays visible and fails the guardrails.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Mapping

SUBJECT_MARK = "Subject:"
BODY_MARK = "\nBody:"
END_MARK = "<END>"
STOP = (END_MARK,)


@dataclass(frozen=True)
class ActionSpec:
    """What an email for one bandit arm offers; ``keyword`` must appear in the email."""

    offer: str
    keyword: str


ACTIONS: dict[str, ActionSpec] = {
    "discount_offer": ActionSpec("15% off your next order", "15% off"),
    "free_shipping": ActionSpec("free shipping on your next order", "free shipping"),
    "content_digest": ActionSpec("a personalised weekly digest", "digest"),
    "winback_email": ActionSpec("a welcome back gift", "welcome back"),
}
NO_EMAIL_ACTIONS = frozenset({"no_contact"})


def segment(features: Mapping[str, Any]) -> str:
    """A short human segment ("at-risk high-value") from scores and spend.

    The model is conditioned on it so tone follows risk (urgent vs thankful) without
    having to read raw numbers.
    """
    churn = _num(features.get("churn_probability"), 0.5)
    spend = _num(features.get("spend_365d"), 0.0)
    recency = _num(features.get("recency_days"), 0.0)
    risk = "at-risk" if churn >= 0.5 else ("loyal" if churn < 0.2 else "cooling")
    if recency > 120 and churn >= 0.5:
        risk = "lapsed"
    value = "high-value" if spend >= 500 else ("low-value" if spend < 100 else "mid-value")
    return f"{risk} {value}"


def build_prompt(
    facts: Mapping[str, Any], action: str, scores: Mapping[str, Any] | None = None
) -> str:
    """The model's input for one customer and action; the answer starts after it."""
    spec = action_spec(action)
    merged = {**facts, **(scores or {})}
    lines = [
        "### Customer",
        f"name: {_text(merged.get('first_name'), 'there')}",
        f"plan: {_text(merged.get('plan_name'), 'standard')}",
        f"region: {_text(merged.get('region_name'), 'your area')}",
        f"segment: {segment(merged)}",
        f"last order: {int(_num(merged.get('recency_days'), 0))} days ago",
        f"orders this year: {int(_num(merged.get('orders_365d'), 0))}",
        f"churn risk: {_num(merged.get('churn_probability'), 0.5):.2f}",
        *reason_lines(merged.get("reasons")),
        f"### Action: {action}",
        f"offer: {spec.offer}",
        "### Email",
        SUBJECT_MARK,
    ]
    return "\n".join(lines)


def reason_lines(reasons: Any) -> list[str]:
    """``reasons: orders fell; support tickets rose`` when the caller asked to explain
    (``/v1/reengage`` with ``explain``): the churn model's top reasons, as phrases
    (``serving.llm.reasons``), or dicts carrying a ``phrase``. No line without reasons,
    so prompts without them are exactly the ones the corpus was written in."""
    if not reasons:
        return []
    phrases = [str(r.get("phrase") if isinstance(r, Mapping) else r).strip() for r in reasons]
    phrases = [p.replace("\n", " ") for p in phrases if p and p != "None"]
    return [f"reasons: {'; '.join(phrases)}"] if phrases else []


def format_completion(subject: str, body: str) -> str:
    """The target text the model learns to produce after the prompt."""
    return f" {subject}{BODY_MARK} {body}\n{END_MARK}"


def parse_completion(text: str) -> tuple[str, str]:
    """(subject, body) from generated text; missing parts come back empty."""
    text = text.split(END_MARK, 1)[0]
    subject, sep, body = text.partition(BODY_MARK)
    if not sep:
        subject, _, body = text.partition("\n")
    return subject.strip(), body.strip()


SLOTS = ("first_name", "plan_name", "region_name", "recency_days", "orders_365d")
_SLOT = re.compile(r"\{(" + "|".join(SLOTS) + r")\}")


def fill_slots(text: str, facts: Mapping[str, Any]) -> str:
    """Replace known ``{slot}``s with the customer's values; slots without a value stay."""
    values = {k: _slot_value(facts.get(k)) for k in SLOTS}
    return _SLOT.sub(lambda m: values[m.group(1)] or m.group(0), text)


def _slot_value(value: Any) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def action_spec(action: str) -> ActionSpec:
    try:
        return ACTIONS[action]
    except KeyError:
        from serving.errors import InvalidRequest

        raise InvalidRequest(f"no email is defined for action {action!r}", field="action") from None


def _num(value: Any, default: float) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return default
    return default if out != out else out  # NaN -> default


def _text(value: Any, default: str) -> str:
    if value is None:
        return default
    text = str(value).strip()
    return text or default
