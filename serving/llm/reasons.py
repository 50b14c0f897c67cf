"""Human reasons for a re-engagement email, from the churn model's explanation.

The explainer says *which* features pushed the customer's churn log-odds up; this module
says *what* about them, from the customer's own values only, so a reason is a fact
about the customer, never a guess:

- windowed counts (orders, spend, support tickets, payment failures, email opens and
  clicks, sessions) compare the short window's daily rate with the longer one's:
  "orders fell", "support tickets rose". A steady rate makes no reason (nothing to say);
- a few level facts name the customer's own value ("last order 45 days ago", "has an
  open support ticket");
- other features are named with their value ("monthly fee 29.99").

Numbers in a reason are the customer's own feature values, so the email guardrail
(``guardrails.check_email``: no number the customer did not have) still holds when the
writer repeats one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

# feature -> (short window, long window, days short, days long, topic)
_TRENDS: dict[str, tuple[str, str, int, int, str]] = {}
for _topic, _name, _windows in (
    ("orders", "orders", (30, 90, 365)),
    ("spend", "spend", (30, 90, 365)),
    ("support tickets", "support_tickets", (30, 90)),
    ("payment failures", "payment_failures", (30, 90)),
    ("email opens", "email_opens", (7, 30, 90)),
    ("email clicks", "email_clicks", (7, 30, 90)),
    ("sessions", "sessions", (7, 30)),
):
    for _i, _days in enumerate(_windows):
        _a, _b = (_i, _i + 1) if _i + 1 < len(_windows) else (_i - 1, _i)
        _TRENDS[f"{_name}_{_days}d"] = (
            f"{_name}_{_windows[_a]}d",
            f"{_name}_{_windows[_b]}d",
            _windows[_a],
            _windows[_b],
            _topic,
        )

# the short window's daily rate must differ from the long one's by this factor to be a trend
TREND_RATIO = 1.25

_LEVELS = {
    "recency_days": "last order {v} days ago",
    "days_since_last_open": "last opened an email {v} days ago",
    "tenure_days": "a customer for {v} days",
    "monthly_fee": "monthly fee {v}",
    "avg_order_value": "average order value {v}",
    "discount_redemptions_365d": "{v} discounts redeemed this year",
    "emails_sent_90d": "{v} emails received in 90 days",
}


def number_text(value: float) -> str:
    """How a reason (and so an email) writes a feature value: integer, or 2 decimals."""
    v = float(value)
    return str(int(round(v))) if abs(v - round(v)) < 1e-6 else f"{v:.2f}"


def phrase(feature: str, facts: Mapping[str, Any]) -> str | None:
    """The fact about ``feature`` this customer's values support, or None (nothing to say)."""
    value = _num(facts.get(feature))
    if value is None:
        return None
    trend = _TRENDS.get(feature)
    if trend is not None:
        short, long, d_short, d_long, topic = trend
        a, b = _num(facts.get(short)), _num(facts.get(long))
        if a is None or b is None:
            return None
        rate_short, rate_long = a / d_short, b / d_long
        if rate_short * TREND_RATIO < rate_long:
            return f"{topic} fell"
        if rate_short > rate_long * TREND_RATIO:
            return f"{topic} rose"
        return None
    if feature == "open_ticket":
        return "has an open support ticket" if value > 0 else None
    if feature == "is_annual_plan":
        return "on an annual plan" if value > 0 else "on a monthly plan"
    template = _LEVELS.get(feature, feature.replace("_", " ") + " {v}")
    return template.format(v=number_text(value))


def churn_reasons(
    features: Sequence[str], contributions: np.ndarray, facts: Mapping[str, Any], k: int
) -> list[dict[str, Any]]:
    """Up to ``k`` reasons among the features that raised churn risk, strongest first.

    ``contributions`` are one customer's churn log-odds contributions in ``features``
    order; a feature whose values support no phrase is passed over, and two features
    with the same phrase ("orders fell" from 30 and 90 days) give it once.
    """
    c = np.asarray(contributions, dtype=np.float64)
    order = np.argsort(-c, kind="stable")
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for i in order[c[order] > 0].tolist():
        if len(out) >= k:
            break
        text = phrase(features[i], facts)
        if text is None or text in seen:
            continue
        seen.add(text)
        out.append(
            {
                "model": "churn",
                "feature": features[i],
                "value": _num(facts.get(features[i])),
                "contribution": float(c[i]),
                "phrase": text,
            }
        )
    return out


def _num(value: Any) -> float | None:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return None if out != out else out
