"""Who the synthetic customers are: static traits, latent paths and observed features.

Why its own module: this is the part of the process the models see, steps 1 and 2 of
:mod:`feature_store.datagen.generate`; the labels are drawn from its output only. Each
function draws from the generator it is handed, so the caller fixes the draw order.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from feature_store.datagen.labels import sigmoid
from feature_store.datagen.schema import PLAN_NAMES, REGION_NAMES

PLAN_FEES = np.array([9.99, 19.99, 39.99])
REGION_SHARES = np.array([0.35, 0.30, 0.12, 0.15, 0.08])
FIRST_NAMES = (
    "Olivia Liam Emma Noah Amelia Oliver Ava Elijah Sophia Lucas Mia Mateo Isabella Levi Evelyn "
    "Asher Harper James Luna Leo Camila Grayson Gianna Ezra Elizabeth Luca Eleanor Ethan Ella "
    "Aiden Abigail Wyatt Sofia Sebastian Avery Benjamin Scarlett Mason Emily Henry Aria Hudson "
    "Penelope Jack Chloe Jackson Layla Owen Mila Daniel Nora Alexander Hazel Maverick Madison "
    "Kai Ellie Gabriel Lily Carter Nova William Isla Logan Grace Michael Violet Samuel Aurora "
    "Muhammad Riley Waylon Zoey Ezekiel Willow Jayden Emilia Luke Stella Lincoln Zoe Theo "
    "Victoria Jacob Hannah Josiah Addison David Leah Jaxon Lucy Elias Eliana Julian Ivy Aisha "
    "Hiroshi Priya Wei Fatima Mohammed Yuki Chen Santiago Valentina Kwame Amara Sven Ingrid"
).split()
EMAIL_DOMAINS = ("example.com", "example.org", "example.net", "mail.example.com")


def static_traits(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """Plan, billing, region, age, first tenure and order value: fixed across snapshots."""
    tier = rng.choice(3, size=n, p=[0.50, 0.35, 0.15])
    annual = (rng.random(n) < 0.25 + 0.10 * tier).astype(np.float64)
    return {
        "plan_tier": tier.astype(np.float64),
        "is_annual_plan": annual,
        "region_code": rng.choice(len(REGION_NAMES), size=n, p=REGION_SHARES).astype(np.float64),
        "monthly_fee": np.round(PLAN_FEES[tier] * np.where(annual > 0, 0.85, 1.0), 2),
        "age_years": np.clip(np.round(18 + rng.gamma(4.0, 5.5, size=n)), 18, 90),
        "tenure0": np.floor(30 + rng.exponential(600.0, size=n)),
        "aov": np.exp(3.5 + 0.25 * tier + 0.30 * rng.standard_normal(n)),
    }


def latent_paths(rng: np.random.Generator, n: int, snapshots: int) -> np.ndarray:
    """(n, snapshots, 3) AR(1) latents: activity, email affinity, friction (unit variance)."""
    out = np.empty((n, snapshots, 3))
    out[:, 0, :] = rng.standard_normal((n, 3))
    for s in range(1, snapshots):
        out[:, s, :] = 0.8 * out[:, s - 1, :] + 0.6 * rng.standard_normal((n, 3))
    return out


def _window_recency(
    rng: np.random.Generator,
    counts: list[np.ndarray],
    edges: list[float],
    tail_mean: float,
    cap: np.ndarray,
) -> np.ndarray:
    """Days since the last event, consistent with nested window counts (newest window first)."""
    n = counts[0].shape[0]
    u = rng.random(n)
    out = np.minimum(edges[-1] + rng.exponential(tail_mean, size=n), np.maximum(cap, edges[-1]))
    lo_edges = [0.0] + edges[:-1]
    for count, lo, hi in reversed(list(zip(counts, lo_edges, edges))):
        k = np.maximum(count, 1)  # reached only when newer windows are empty: all in [lo, hi)
        first = lo + (hi - lo) * (1.0 - u ** (1.0 / k))  # minimum of k uniform event times
        out = np.where(count > 0, first, out)
    return np.floor(out)


def snapshot_features(
    rng: np.random.Generator, st: dict[str, np.ndarray], lat: np.ndarray, s: int
) -> dict[str, np.ndarray]:
    """Snapshot ``s``'s observed features, drawn from its latents and the static traits."""
    n = lat.shape[0]
    act, aff, fri = lat[:, 0], lat[:, 1], lat[:, 2]
    tier, annual = st["plan_tier"], st["is_annual_plan"]
    tenure = st["tenure0"] + 7.0 * s
    rate = np.exp(-3.6 + 0.8 * act + 0.15 * tier)  # orders per day
    o30 = rng.poisson(rate * 30)
    o90 = o30 + rng.poisson(rate * 60)
    o365 = o90 + rng.poisson(rate * 275)
    noise = lambda: np.exp(0.2 * rng.standard_normal(n))  # noqa: E731
    s30, s90 = o30 * st["aov"] * noise(), (o90 - o30) * st["aov"] * noise()
    s365 = (o365 - o90) * st["aov"] * noise()
    spend30, spend90 = s30, s30 + s90
    spend365 = spend90 + s365
    recency = _window_recency(rng, [o30, o90, o365], [30.0, 90.0, 365.0], 200.0, tenure)
    sent = rng.poisson(24 + 6 * tier)
    opens90 = rng.binomial(sent, sigmoid(-0.8 + 0.9 * aff + 0.3 * act))
    clicks90 = rng.binomial(opens90, sigmoid(-1.8 + 0.7 * aff))
    opens30 = rng.binomial(opens90, 0.34)
    opens7 = rng.binomial(opens30, 0.24)
    clicks30 = np.minimum(rng.binomial(clicks90, 0.34), opens30)
    clicks7 = np.minimum(rng.binomial(clicks30, 0.24), opens7)
    last_open = _window_recency(rng, [opens7, opens30, opens90], [7.0, 30.0, 90.0], 90.0, tenure)
    srate = np.exp(-1.5 + 0.7 * act + 0.3 * aff)
    sess7 = rng.poisson(srate * 7)
    sess30 = sess7 + rng.poisson(srate * 23)
    pf90 = rng.poisson(np.exp(-2.2 + 0.9 * fri) * np.where(annual > 0, 0.6, 1.3))
    pf30 = rng.binomial(pf90, 0.34)
    t90 = rng.poisson(np.exp(-1.6 + 0.8 * fri))
    t30 = rng.binomial(t90, 0.34)
    open_ticket = (rng.random(n) < np.where(t30 > 0, 0.6, 0.03)).astype(np.float64)
    return {
        "tenure_days": tenure,
        "plan_tier": tier,
        "is_annual_plan": annual,
        "region_code": st["region_code"],
        "monthly_fee": st["monthly_fee"],
        "payment_failures_30d": pf30,
        "payment_failures_90d": pf90,
        "support_tickets_30d": t30,
        "support_tickets_90d": t90,
        "open_ticket": open_ticket,
        "discount_redemptions_365d": rng.poisson(0.5 + 0.08 * o365),
        "age_years": st["age_years"],
        "recency_days": recency,
        "orders_30d": o30,
        "orders_90d": o90,
        "orders_365d": o365,
        "spend_30d": np.round(spend30, 2),
        "spend_90d": np.round(spend90, 2),
        "spend_365d": np.round(spend365, 2),
        "avg_order_value": np.round(np.where(o365 > 0, spend365 / np.maximum(o365, 1), 0.0), 2),
        "email_opens_7d": opens7,
        "email_opens_30d": opens30,
        "email_opens_90d": opens90,
        "email_clicks_7d": clicks7,
        "email_clicks_30d": clicks30,
        "email_clicks_90d": clicks90,
        "emails_sent_90d": sent,
        "open_rate_90d": opens90 / np.maximum(sent, 1),
        "click_rate_90d": clicks90 / np.maximum(opens90, 1),
        "sessions_7d": sess7,
        "sessions_30d": sess30,
        "days_since_last_open": last_open,
    }


def contact_table(
    rng: np.random.Generator, ids: np.ndarray, st: dict[str, np.ndarray], stamp: pd.DatetimeIndex
) -> pd.DataFrame:
    """One contact row per customer: a first name, an email, plan and region names."""
    names = np.asarray(FIRST_NAMES, dtype=object)[rng.integers(0, len(FIRST_NAMES), ids.shape[0])]
    domains = np.asarray(EMAIL_DOMAINS, dtype=object)[
        rng.integers(0, len(EMAIL_DOMAINS), ids.shape[0])
    ]
    first = pd.Series(names)
    email = first.str.lower() + "." + pd.Series(ids).astype(str) + "@" + pd.Series(domains)
    return pd.DataFrame(
        {
            "customer_id": ids,
            "event_timestamp": stamp,
            "first_name": first,
            "email": email,
            "plan_name": np.asarray(PLAN_NAMES, dtype=object)[st["plan_tier"].astype(np.int64)],
            "region_name": np.asarray(REGION_NAMES, dtype=object)[
                st["region_code"].astype(np.int64)
            ],
        }
    )
