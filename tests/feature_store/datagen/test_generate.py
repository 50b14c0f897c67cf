"""One generation: determinism, schema and timestamps, nested windows and drift."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import pandas as pd

from feature_store.datagen.generate import CustomerData, generate
from feature_store.datagen.schema import (
    ACTIVITY_FEATURES,
    CHURN_FEATURES,
    CONTACT_FEATURES,
    ENGAGEMENT_FEATURES,
    PLAN_NAMES,
    PROFILE_FEATURES,
)


def _values(d: CustomerData) -> list[pd.DataFrame]:
    return [t.drop(columns="event_timestamp") for t in d.tables().values()]


def test_same_seed_same_data_and_other_seed_differs(data: CustomerData, anchor: datetime) -> None:
    again = generate(4000, seed=11, snapshots=3, anchor=anchor)
    for a, b in zip(data.tables().values(), again.tables().values()):
        pd.testing.assert_frame_equal(a, b)
    other = generate(4000, seed=12, snapshots=3, anchor=anchor)
    assert not data.activity.equals(other.activity)


def test_anchor_moves_timestamps_only(data: CustomerData, anchor: datetime) -> None:
    later = generate(4000, seed=11, snapshots=3, anchor=anchor + timedelta(days=5))
    for a, b in zip(_values(data), _values(later)):
        pd.testing.assert_frame_equal(a, b)
    shift = later.activity["event_timestamp"] - data.activity["event_timestamp"]
    assert (shift == pd.Timedelta(days=5)).all()


def test_schema_and_timestamps(data: CustomerData, anchor: datetime) -> None:
    n, s = 4000, 3
    assert list(data.profile.columns) == ["customer_id", "event_timestamp", *PROFILE_FEATURES]
    assert list(data.activity.columns) == ["customer_id", "event_timestamp", *ACTIVITY_FEATURES]
    assert len(CHURN_FEATURES) == 32 and len(ENGAGEMENT_FEATURES) == 24
    for table in (data.profile, data.activity):
        assert len(table) == n * s and table["customer_id"].dtype == np.int64
        assert all(table[c].dtype == np.float32 for c in table.columns[2:])
        assert not table.iloc[:, 2:].isna().any().any()
        latest = table.groupby("customer_id")["event_timestamp"].max()
        assert latest.max() <= anchor and latest.min() > anchor - timedelta(hours=7)
        assert str(table["event_timestamp"].dt.tz) == "UTC"
    snaps = data.activity["event_timestamp"].dt.floor("7D").nunique()
    assert snaps >= s  # a week apart
    assert len(data.contact) == n and list(data.contact.columns[2:]) == list(CONTACT_FEATURES)
    assert data.contact["email"].str.match(r"^[a-z]+\.\d+@[a-z.]+$").all()
    assert set(data.contact["plan_name"]) <= set(PLAN_NAMES)
    assert list(data.labels.columns) == [
        "customer_id",
        "event_timestamp",
        "churned",
        "engaged",
        "p_churn",
        "p_engaged",
    ]
    assert (data.labels["event_timestamp"] == anchor - timedelta(days=7) + timedelta(hours=1)).all()


def test_windows_are_nested_and_values_drift(data: CustomerData) -> None:
    a = data.activity
    assert (a.orders_30d <= a.orders_90d).all() and (a.orders_90d <= a.orders_365d).all()
    assert (a.spend_30d <= a.spend_90d + 0.01).all() and (a.spend_90d <= a.spend_365d + 0.01).all()
    assert (a.email_clicks_7d <= a.email_opens_7d).all() and (
        a.email_opens_90d <= a.emails_sent_90d
    ).all()
    assert ((a.recency_days < 30) == (a.orders_30d > 0)).all()
    assert a.open_rate_90d.between(0, 1).all() and a.click_rate_90d.between(0, 1).all()
    p = data.profile
    assert (p.payment_failures_30d <= p.payment_failures_90d).all()
    first, last = a[a.index < 4000], a[a.index >= 8000]
    assert (first["orders_90d"].to_numpy() != last["orders_90d"].to_numpy()).mean() > 0.3
    tenure = p["tenure_days"].to_numpy().reshape(3, -1)
    assert (np.diff(tenure, axis=0) == 7).all()
