"""One generation of synthetic customers, drawn in a fixed order from one seeded generator.

Why here: the draw order *is* the generation (reordering any draw changes every value
after it), so the steps below are sequenced in one place.

Generative process (all draws from one ``numpy.random.Generator(seed)``):

1. Static traits per customer: plan tier (0 basic, 1 plus, 2 premium; 50/35/15 %),
   annual plan (Bernoulli 0.25 + 0.1 tier), region (5 regions), age, monthly fee,
   tenure at the first snapshot, average order value, a first name and email.
2. Three latent traits (activity, email affinity, friction) follow an AR(1) process
   across ``snapshots`` weekly snapshots (``x_s = 0.8 x_{s-1} + 0.6 eps``), so values
   drift between snapshots. Each snapshot draws its observed counts from the latents:
   orders (Poisson, nested 30 ⊆ 90 ⊆ 365 day windows), spend (orders x order value x
   lognormal noise), recency (consistent with the windows), emails sent (Poisson),
   opens (Binomial of sent), clicks (Binomial of opens), sessions, payment failures,
   support tickets, open ticket, discount redemptions.
3. Labels are observed at snapshot ``snapshots - 2`` (one week before the latest) at
   that snapshot's timestamp + 1 hour, and drawn as Bernoulli(p) with
   ``p = sigmoid(logit)`` where the logits are
   :func:`~feature_store.datagen.labels.churn_logit` and
   :func:`~feature_store.datagen.labels.engagement_logit` of that snapshot's *stored*
   (float32) features. The Bernoulli draw is the noise; the latents never enter the
   label directly.
4. The latest snapshot is anchored at ``anchor`` (default: today, UTC midnight), earlier
   ones a week apart; each row's timestamp is jittered back by up to 6 hours. Feature
   *values* depend only on the seed, never on the anchor.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import numpy as np
import pandas as pd

from feature_store.datagen.labels import draw_labels
from feature_store.datagen.population import (
    contact_table,
    latent_paths,
    snapshot_features,
    static_traits,
)
from feature_store.datagen.schema import ACTIVITY_FEATURES, PROFILE_FEATURES

SNAPSHOT_EVERY = timedelta(days=7)
LABEL_DELAY = timedelta(hours=1)


@dataclass(frozen=True)
class CustomerData:
    """One generation: three feature tables and the label table (entity dataframe)."""

    profile: (
        pd.DataFrame
    )  # customer_id, event_timestamp, PROFILE_FEATURES (float32); N x snapshots rows
    activity: (
        pd.DataFrame
    )  # customer_id, event_timestamp, ACTIVITY_FEATURES (float32); N x snapshots rows
    contact: pd.DataFrame  # customer_id, event_timestamp, CONTACT_FEATURES (str); N rows
    labels: pd.DataFrame  # customer_id, event_timestamp, churned, engaged, p_churn, p_engaged

    def tables(self) -> dict[str, pd.DataFrame]:
        return {
            "customer_profile": self.profile,
            "customer_activity": self.activity,
            "customer_contact": self.contact,
            "labels": self.labels,
        }


def build_day(now: datetime | None = None) -> datetime:
    """UTC midnight of today: the latest snapshot's anchor, so online rows stay fresh."""
    now = now or datetime.now(timezone.utc)
    return now.astimezone(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)


def generate(
    customers: int = 100_000, seed: int = 7, snapshots: int = 2, anchor: datetime | None = None
) -> CustomerData:
    """Generate ``customers`` x ``snapshots`` feature rows and one label row per customer."""
    if customers < 1 or snapshots < 2:
        raise ValueError("need at least 1 customer and 2 snapshots")
    rng = np.random.default_rng(seed)
    n = customers
    ids = np.arange(1, n + 1, dtype=np.int64)
    static = static_traits(rng, n)
    latents = latent_paths(rng, n, snapshots)
    anchor = build_day() if anchor is None else anchor.astimezone(timezone.utc)
    jitter = rng.integers(0, 6 * 3600, size=(snapshots, n))
    profiles, activities, stamps = [], [], []
    for s in range(snapshots):
        features = snapshot_features(rng, static, latents[:, s, :], s)
        ts = anchor - (snapshots - 1 - s) * SNAPSHOT_EVERY
        stamp = pd.to_datetime(ts) - pd.to_timedelta(jitter[s], unit="s")
        stamps.append(stamp)
        profiles.append(_frame(ids, stamp, features, PROFILE_FEATURES))
        activities.append(_frame(ids, stamp, features, ACTIVITY_FEATURES))
    label_s = snapshots - 2
    labels = draw_labels(
        rng,
        ids,
        profiles[label_s],
        activities[label_s],
        anchor - (snapshots - 1 - label_s) * SNAPSHOT_EVERY + LABEL_DELAY,
    )
    contact = contact_table(rng, ids, static, stamps[0])
    return CustomerData(
        profile=pd.concat(profiles, ignore_index=True),
        activity=pd.concat(activities, ignore_index=True),
        contact=contact,
        labels=labels,
    )


def _frame(
    ids: np.ndarray,
    stamp: pd.DatetimeIndex,
    features: dict[str, np.ndarray],
    names: tuple[str, ...],
) -> pd.DataFrame:
    cols: dict[str, Any] = {"customer_id": ids, "event_timestamp": stamp}
    cols.update({k: np.asarray(features[k], dtype=np.float32) for k in names})
    return pd.DataFrame(cols)
