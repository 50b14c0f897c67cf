"""Shared training steps: point-in-time training data, split, metrics, fingerprints.

Training reads the Feast *offline* store with ``get_historical_features`` on the model's
feature service, with the label table (customer_id + event_timestamp) as the entity
dataframe: the point-in-time join picks the snapshot the labels were observed on, not
the newest one, exactly as a production retraining job would.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from feast import FeatureStore
from sklearn.metrics import log_loss, roc_auc_score

HOLDOUT_SHARE = 0.2
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)  # Fibonacci hashing: a fixed, seed-free id split


@dataclass(frozen=True)
class TrainingData:
    """Features (N, F) float32 in ``features`` order, labels and true probabilities."""

    ids: np.ndarray
    x: np.ndarray
    y: np.ndarray
    p_true: np.ndarray
    features: tuple[str, ...]
    feature_service: str
    label: str
    holdout: np.ndarray = field(repr=False)  # (N,) bool

    @property
    def train(self) -> tuple[np.ndarray, np.ndarray]:
        return self.x[~self.holdout], self.y[~self.holdout]

    @property
    def test(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return self.x[self.holdout], self.y[self.holdout], self.p_true[self.holdout]

    def fingerprint(self) -> str:
        """Hash of values, labels, ids and feature list: never of timestamps."""
        h = hashlib.sha256()
        h.update(json.dumps([self.feature_service, self.label, list(self.features)]).encode())
        for arr in (self.ids.astype(np.int64), self.x.astype(np.float32), self.y.astype(np.int8)):
            h.update(np.ascontiguousarray(arr).tobytes())
        return h.hexdigest()


def service_features(store: FeatureStore, service: str) -> tuple[str, ...]:
    """The feature service's features, in its projection order (the model's column order)."""
    fs = store.get_feature_service(service)
    return tuple(f.name for proj in fs.feature_view_projections for f in proj.features)


def holdout_mask(ids: np.ndarray, share: float = HOLDOUT_SHARE) -> np.ndarray:
    """Deterministic split by customer id: the same customer is always on the same side."""
    mixed = ids.astype(np.uint64) * _GOLDEN
    return (mixed >> np.uint64(11)).astype(np.float64) / float(1 << 53) < share


def load_training_data(
    store: FeatureStore, service: str, labels: pd.DataFrame, label: str, p_column: str
) -> TrainingData:
    """Point-in-time join of the service's features onto the label rows."""
    names = service_features(store, service)
    entity_df = labels[["customer_id", "event_timestamp"]]
    job = store.get_historical_features(
        entity_df=entity_df, features=store.get_feature_service(service)
    )
    joined = job.to_df().sort_values("customer_id", kind="stable").reset_index(drop=True)
    lab = labels.sort_values("customer_id", kind="stable").reset_index(drop=True)
    ids = joined["customer_id"].to_numpy(np.int64)
    if not np.array_equal(ids, lab["customer_id"].to_numpy(np.int64)):
        raise ValueError("historical retrieval lost or duplicated label rows")
    x = joined[list(names)].to_numpy(np.float32)
    return TrainingData(
        ids=ids,
        x=x,
        y=lab[label].to_numpy(np.int8),
        p_true=lab[p_column].to_numpy(np.float64),
        features=names,
        feature_service=service,
        label=label,
        holdout=holdout_mask(ids),
    )


def evaluate(y: np.ndarray, p: np.ndarray, p_true: np.ndarray) -> dict[str, float]:
    """Holdout AUC and log loss of the model beside the Bayes limit (the true probabilities)."""
    eps = 1e-7
    return {
        "holdout_auc": float(roc_auc_score(y, p)),
        "holdout_logloss": float(log_loss(y, np.clip(p, eps, 1 - eps), labels=[0, 1])),
        "bayes_auc": float(roc_auc_score(y, p_true)),
        "bayes_logloss": float(log_loss(y, np.clip(p_true, eps, 1 - eps), labels=[0, 1])),
    }


def code_fingerprint(*paths: Path) -> str:
    """Hash of the training code: a code change makes a new model version."""
    h = hashlib.sha256()
    for path in sorted(paths):
        h.update(path.name.encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def params_fingerprint(params: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode()).hexdigest()
