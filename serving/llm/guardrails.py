"""Checks on a generated email, the templated fallback, and the unsubscribe footer.

A model can write anything; a customer must never receive an empty subject, a
``{first_name}`` left unfilled, someone else's name or an offer we did not make. Every
draft is checked; a failing one is replaced by a safe template and the answer says so
(``fallback=True`` and the reason), so callers can count and alert on it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping

from serving.llm.prompts import action_spec

if TYPE_CHECKING:
    from serving.settings import LLMSettings

# {x}, {{, }}, [First Name], <NAME>, %s-style leftovers: signs of an unfilled template
_PLACEHOLDER = re.compile(
    r"\{[^{}\n]{0,40}\}|\{\{|\}\}|\[\s*[A-Za-z_][A-Za-z_ ]{0,30}\s*\]|<[A-Z_]{2,}>|%\(\w+\)s"
)


@dataclass(frozen=True)
class GuardrailConfig:
    subject_max_chars: int = 120
    body_min_chars: int = 40
    body_max_chars: int = 2000
    footer: str = "Unsubscribe: {unsubscribe_url}"
    unsubscribe_url: str = "https://example.com/unsubscribe?customer={customer_id}"

    @classmethod
    def from_settings(cls, s: "LLMSettings") -> "GuardrailConfig":
        return cls(
            s.subject_max_chars,
            s.body_min_chars,
            s.body_max_chars,
            s.unsubscribe_footer,
            s.unsubscribe_url,
        )


def check_email(
    subject: str, body: str, facts: Mapping[str, Any], action: str, cfg: GuardrailConfig
) -> str | None:
    """The first reason the draft is unfit to send, or None when it passes."""
    spec = action_spec(action)
    text = f"{subject}\n{body}"
    name = str(facts.get("first_name") or "").strip()
    if not subject.strip():
        return "empty_subject"
    if len(subject) > cfg.subject_max_chars:
        return "subject_too_long"
    if len(body) < cfg.body_min_chars:
        return "body_too_short"
    if len(body) > cfg.body_max_chars:
        return "body_too_long"
    if _PLACEHOLDER.search(text):
        return "unfilled_placeholder"
    if name and not re.search(rf"(?<!\w){re.escape(name)}(?!\w)", text, re.IGNORECASE):
        return "missing_customer_name"
    if spec.keyword.lower() not in text.lower():
        return "missing_offer"
    if unsupported_numbers(text, facts, f"{spec.offer} {spec.keyword}"):
        return "unsupported_number"
    return None


def unsupported_numbers(text: str, facts: Mapping[str, Any], offer: str = "") -> list[str]:
    """Numbers in ``text`` that are neither one of the customer's values nor in the offer.

    An email may repeat what we know of the customer ("your last order 45 days ago", a
    reason from the explanation) but must never state a value the customer did not have:
    a number is accepted when it equals a fact's value (as an integer, or to 2 decimals,
    as ``reasons.number_text`` writes them) or appears in the offer's own text. The check
    is by value, not by meaning: a number that is *some* value of the customer passes
    even if the sentence attaches it to another feature.
    """
    allowed = {_norm(n) for n in _NUMBER.findall(offer)}
    known = [
        float(v)
        for v in facts.values()
        if isinstance(v, (int, float))
        and not isinstance(v, bool)
        and v == v
        and abs(v) != float("inf")
    ]
    out = []
    for token in _NUMBER.findall(text):
        n = _norm(token)
        if n in allowed:
            continue
        value = float(n)
        if not any(value == round(k) or abs(value - k) <= 0.005 + 1e-9 for k in known):
            out.append(token)
    return out


# a number not glued to a word or another number: 45, 1,250, 29.99 (not the 2 of "B2B")
_NUMBER = re.compile(
    r"(?<![\w.,])\d{1,3}(?:,\d{3})+(?:\.\d+)?(?![\w])|(?<![\w.,])\d+(?:\.\d+)?(?![\w])"
)


def _norm(token: str) -> str:
    return token.replace(",", "")


def fallback_email(facts: Mapping[str, Any], action: str) -> tuple[str, str]:
    """A plain, always-valid email for the action (no model involved)."""
    spec = action_spec(action)
    name = str(facts.get("first_name") or "").strip() or "there"
    subject = f"{name}, {spec.keyword} for you"
    body = (
        f"Hi {name}, thank you for being with us. We have {spec.offer} waiting for you. "
        "We hope to see you again soon."
    )
    return subject, body


def footer_text(facts: Mapping[str, Any], cfg: GuardrailConfig) -> str:
    """The configured footer with its URL filled; unknown fields become empty, never braces."""
    fields = _Blank({k: v for k, v in facts.items() if v is not None})
    url = cfg.unsubscribe_url.format_map(fields)
    return cfg.footer.format_map(_Blank({**fields, "unsubscribe_url": url}))


def add_footer(body: str, facts: Mapping[str, Any], cfg: GuardrailConfig) -> str:
    footer = footer_text(facts, cfg)
    return body if body.endswith(footer) else f"{body.rstrip()}\n\n{footer}"


class _Blank(dict):
    def __missing__(self, key: str) -> str:
        return ""
