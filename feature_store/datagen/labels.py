"""The true label process: churn and engagement probabilities, and the label draw.

Why its own module: these functions *are* the documented process the holdout's Bayes
limit comes from, and the tests check a generation's labels against them; the logits
read only the features each model is served, never the latent traits.
"""

from __future__ import annotations

from datetime import datetime
from typing import TypeAlias

import numpy as np
import pandas as pd

from feature_store.datagen.schema import ACTIVITY_FEATURES, PROFILE_FEATURES

REGION_CHURN = np.array([0.0, 0.15, 0.30, -0.10, 0.20])
REGION_ENGAGEMENT = np.array([0.0, 0.10, -0.10, 0.20, -0.05])

Features: TypeAlias = pd.DataFrame | dict[str, np.ndarray]


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def _col(f: Features, name: str) -> np.ndarray:
    return np.asarray(f[name], dtype=np.float64)


def churn_logit(f: Features) -> np.ndarray:
    """The true churn log-odds: a function of the 32 churn-model features only."""
    tickets = np.minimum(_col(f, "support_tickets_90d"), 5.0)
    return (
        +0.10
        + 0.75 * (np.log1p(_col(f, "recency_days")) - 3.5)
        - 0.35 * np.log1p(_col(f, "orders_90d"))
        - 0.25 * (np.log1p(_col(f, "spend_365d")) - 5.0)
        + 0.55 * np.minimum(_col(f, "payment_failures_30d"), 3.0)
        + 0.20 * np.minimum(_col(f, "payment_failures_90d"), 6.0)
        + 0.30 * tickets * (1.0 + _col(f, "open_ticket"))
        - 0.70 * _col(f, "is_annual_plan")
        - 0.35 * np.log1p(_col(f, "tenure_days") / 365.0)
        - 1.20 * _col(f, "open_rate_90d")
        + 0.50 * (_col(f, "days_since_last_open") > 60.0)
        - 0.20 * np.log1p(_col(f, "sessions_30d"))
        + 0.015 * (_col(f, "monthly_fee") - 20.0) * (1.0 - _col(f, "is_annual_plan"))
        + REGION_CHURN[_col(f, "region_code").astype(np.int64)]
        - 0.15 * np.log1p(_col(f, "discount_redemptions_365d"))
    )


def engagement_logit(f: Features) -> np.ndarray:
    """The true engagement log-odds: a function of the 24 engagement-model features only."""
    return (
        -1.95
        + 2.20 * _col(f, "open_rate_90d")
        + 2.50 * _col(f, "click_rate_90d")
        + 0.35 * np.log1p(_col(f, "email_opens_7d"))
        + 0.30 * np.log1p(_col(f, "sessions_7d"))
        - 0.25 * np.log1p(_col(f, "days_since_last_open"))
        + 0.25 * _col(f, "plan_tier")
        + 0.20 * np.log1p(_col(f, "orders_30d"))
        - 0.60 * (_col(f, "recency_days") > 120.0)
        + 0.15 * _col(f, "is_annual_plan")
        + REGION_ENGAGEMENT[_col(f, "region_code").astype(np.int64)]
        - 0.10 * np.log1p(_col(f, "tenure_days") / 365.0)
    )


def churn_probability(f: Features) -> np.ndarray:
    return sigmoid(churn_logit(f))


def engagement_probability(f: Features) -> np.ndarray:
    return sigmoid(engagement_logit(f))


def draw_labels(
    rng: np.random.Generator,
    ids: np.ndarray,
    profile: pd.DataFrame,
    activity: pd.DataFrame,
    at: datetime,
) -> pd.DataFrame:
    """Bernoulli labels from the *stored* (float32) features of one snapshot, observed at ``at``."""
    feats = {
        **{k: profile[k].to_numpy() for k in PROFILE_FEATURES},
        **{k: activity[k].to_numpy() for k in ACTIVITY_FEATURES},
    }
    p_churn, p_engaged = churn_probability(feats), engagement_probability(feats)
    u = rng.random((2, ids.shape[0]))
    return pd.DataFrame(
        {
            "customer_id": ids,
            "event_timestamp": pd.Series(pd.Timestamp(at), index=range(ids.shape[0])),
            "churned": (u[0] < p_churn).astype(np.int8),
            "engaged": (u[1] < p_engaged).astype(np.int8),
            "p_churn": p_churn,
            "p_engaged": p_engaged,
        }
    )
