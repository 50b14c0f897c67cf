"""The labels follow the documented process, and each logit reads only its model's features."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import roc_auc_score

from feature_store.datagen.generate import CustomerData
from feature_store.datagen.labels import (
    churn_probability,
    engagement_logit,
    engagement_probability,
)
from feature_store.datagen.schema import (
    ACTIVITY_FEATURES,
    CHURN_FEATURES,
    ENGAGEMENT_FEATURES,
    PROFILE_FEATURES,
)


def test_labels_follow_the_documented_process(data: CustomerData) -> None:
    """p_* are the documented functions of the label snapshot's stored features."""
    n = 4000
    snap = slice(n, 2 * n)  # snapshot 1 of 3 = snapshots - 2
    feats = {
        **{c: data.profile[c].to_numpy()[snap] for c in PROFILE_FEATURES},
        **{c: data.activity[c].to_numpy()[snap] for c in ACTIVITY_FEATURES},
    }
    np.testing.assert_allclose(data.labels["p_churn"], churn_probability(feats))
    np.testing.assert_allclose(data.labels["p_engaged"], engagement_probability(feats))
    latest = {
        **{c: data.profile[c].to_numpy()[2 * n :] for c in PROFILE_FEATURES},
        **{c: data.activity[c].to_numpy()[2 * n :] for c in ACTIVITY_FEATURES},
    }
    assert not np.allclose(data.labels["p_churn"], churn_probability(latest))
    for y, p in (("churned", "p_churn"), ("engaged", "p_engaged")):
        lab = data.labels
        assert abs(lab[y].mean() - lab[p].mean()) < 0.03  # calibrated Bernoulli draws
        assert 0.05 < lab[y].mean() < 0.6
        assert roc_auc_score(lab[y], lab[p]) > 0.7  # real signal


def test_engagement_ignores_non_engagement_features(data: CustomerData) -> None:
    feats = {c: data.activity[c].to_numpy()[:100] for c in ACTIVITY_FEATURES}
    feats.update({c: data.profile[c].to_numpy()[:100] for c in PROFILE_FEATURES})
    base = engagement_logit(feats)
    for c in set(CHURN_FEATURES) - set(ENGAGEMENT_FEATURES):
        np.testing.assert_array_equal(engagement_logit({**feats, c: feats[c] + 3}), base)
