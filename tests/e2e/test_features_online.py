"""Online features under a running app: a Feast push is visible to the next /v1/score."""

from __future__ import annotations

from datetime import datetime, timezone

import httpx
import numpy as np
import pandas as pd
import pytest

from feature_store.datagen.schema import ACTIVITY_FEATURES
from serving.settings import Settings

pytestmark = pytest.mark.e2e


def test_push_is_visible_to_the_next_score(app_url: str, settings: Settings) -> None:
    from feature_store.repo import load_store

    cid = 77
    before = httpx.post(f"{app_url}/v1/score", json={"customer_ids": [cid]}, timeout=30).json()
    assert before["feature_age_s"][0] > 60  # materialized at build time, hours old

    now = datetime.now(timezone.utc)
    active = {name: 0.0 for name in ACTIVITY_FEATURES}  # a customer who stopped doing anything
    active.update(recency_days=300.0, days_since_last_open=300.0)
    row = pd.DataFrame(
        {
            "customer_id": [cid],
            "event_timestamp": [pd.Timestamp(now)],
            **{k: np.array([v], dtype=np.float32) for k, v in active.items()},
        }
    )
    load_store(settings.features).push("customer_activity_push", row)

    after = httpx.post(f"{app_url}/v1/score", json={"customer_ids": [cid]}, timeout=30).json()
    assert after["found"] == [True]
    assert after["churn_probability"][0] != before["churn_probability"][0]
    assert after["engagement_probability"][0] != before["engagement_probability"][0]
