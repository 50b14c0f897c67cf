"""The synthetic customer generator: determinism, schema, and the documented label process."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from feature_store import datagen as dg

ANCHOR = datetime(2026, 3, 1, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def data() -> dg.CustomerData:
    return dg.generate(4000, seed=11, snapshots=3, anchor=ANCHOR)


def _values(d: dg.CustomerData) -> list[pd.DataFrame]:
    return [t.drop(columns="event_timestamp") for t in d.tables().values()]


def test_same_seed_same_data_and_other_seed_differs(data: dg.CustomerData) -> None:
    again = dg.generate(4000, seed=11, snapshots=3, anchor=ANCHOR)
    for a, b in zip(data.tables().values(), again.tables().values()):
        pd.testing.assert_frame_equal(a, b)
    other = dg.generate(4000, seed=12, snapshots=3, anchor=ANCHOR)
    assert not data.activity.equals(other.activity)


def test_anchor_moves_timestamps_only(data: dg.CustomerData) -> None:
    later = dg.generate(4000, seed=11, snapshots=3, anchor=ANCHOR + timedelta(days=5))
    for a, b in zip(_values(data), _values(later)):
        pd.testing.assert_frame_equal(a, b)
    shift = later.activity["event_timestamp"] - data.activity["event_timestamp"]
    assert (shift == pd.Timedelta(days=5)).all()


def test_schema_and_timestamps(data: dg.CustomerData) -> None:
    n, s = 4000, 3
    assert list(data.profile.columns) == ["customer_id", "event_timestamp", *dg.PROFILE_FEATURES]
    assert list(data.activity.columns) == ["customer_id", "event_timestamp", *dg.ACTIVITY_FEATURES]
    assert len(dg.CHURN_FEATURES) == 32 and len(dg.ENGAGEMENT_FEATURES) == 24
    for table in (data.profile, data.activity):
        assert len(table) == n * s and table["customer_id"].dtype == np.int64
        assert all(table[c].dtype == np.float32 for c in table.columns[2:])
        assert not table.iloc[:, 2:].isna().any().any()
        latest = table.groupby("customer_id")["event_timestamp"].max()
        assert latest.max() <= ANCHOR and latest.min() > ANCHOR - timedelta(hours=7)
        assert str(table["event_timestamp"].dt.tz) == "UTC"
    snaps = data.activity["event_timestamp"].dt.floor("7D").nunique()
    assert snaps >= s  # a week apart
    assert len(data.contact) == n and list(data.contact.columns[2:]) == list(dg.CONTACT_FEATURES)
    assert data.contact["email"].str.match(r"^[a-z]+\.\d+@[a-z.]+$").all()
    assert set(data.contact["plan_name"]) <= set(dg.PLAN_NAMES)
    assert list(data.labels.columns) == [
        "customer_id",
        "event_timestamp",
        "churned",
        "engaged",
        "p_churn",
        "p_engaged",
    ]
    assert (data.labels["event_timestamp"] == ANCHOR - timedelta(days=7) + timedelta(hours=1)).all()


def test_windows_are_nested_and_values_drift(data: dg.CustomerData) -> None:
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


def test_labels_follow_the_documented_process(data: dg.CustomerData) -> None:
    """p_* are the documented functions of the label snapshot's stored features."""
    n = 4000
    snap = slice(n, 2 * n)  # snapshot 1 of 3 = snapshots - 2
    feats = {
        **{c: data.profile[c].to_numpy()[snap] for c in dg.PROFILE_FEATURES},
        **{c: data.activity[c].to_numpy()[snap] for c in dg.ACTIVITY_FEATURES},
    }
    np.testing.assert_allclose(data.labels["p_churn"], dg.churn_probability(feats))
    np.testing.assert_allclose(data.labels["p_engaged"], dg.engagement_probability(feats))
    latest = {
        **{c: data.profile[c].to_numpy()[2 * n :] for c in dg.PROFILE_FEATURES},
        **{c: data.activity[c].to_numpy()[2 * n :] for c in dg.ACTIVITY_FEATURES},
    }
    assert not np.allclose(data.labels["p_churn"], dg.churn_probability(latest))
    for y, p in (("churned", "p_churn"), ("engaged", "p_engaged")):
        lab = data.labels
        assert abs(lab[y].mean() - lab[p].mean()) < 0.03  # calibrated Bernoulli draws
        assert 0.05 < lab[y].mean() < 0.6
        assert roc_auc_score(lab[y], lab[p]) > 0.7  # real signal


def test_engagement_ignores_non_engagement_features(data: dg.CustomerData) -> None:
    feats = {c: data.activity[c].to_numpy()[:100] for c in dg.ACTIVITY_FEATURES}
    feats.update({c: data.profile[c].to_numpy()[:100] for c in dg.PROFILE_FEATURES})
    base = dg.engagement_logit(feats)
    for c in set(dg.CHURN_FEATURES) - set(dg.ENGAGEMENT_FEATURES):
        np.testing.assert_array_equal(dg.engagement_logit({**feats, c: feats[c] + 3}), base)


def test_ensure_regenerates_only_on_change(tmp_path: Path) -> None:
    paths, made = dg.ensure(tmp_path, 300, seed=1, snapshots=2, anchor=ANCHOR)
    assert made and all(p.is_file() for p in paths.values())
    mtime = paths["labels"].stat().st_mtime_ns
    _, made = dg.ensure(tmp_path, 300, seed=1, snapshots=2, anchor=ANCHOR)
    assert not made and paths["labels"].stat().st_mtime_ns == mtime
    _, made = dg.ensure(tmp_path, 300, seed=2, snapshots=2, anchor=ANCHOR)
    assert made
    back = pd.read_parquet(paths["customer_profile"])
    assert len(back) == 600 and back["event_timestamp"].dt.tz is not None
