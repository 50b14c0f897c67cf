"""Every metric reengage exports: name, labels, and the helpers that record them.

``ray.serve.metrics`` objects, because replicas are separate processes: Ray's metrics
agent on each node exports them (``ray start --metrics-export-port``, 8080 for
``reengage serve``) with the deployment, replica and application added as labels.
Recording takes arrays and counts them with one ``np.unique``, never a per-row loop.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np
from ray.serve.metrics import Counter, Histogram

LATENCY_MS = [0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 5000]
ROWS = [1, 10, 100, 500, 1000, 2000, 5000, 10000, 20000]


@lru_cache(maxsize=None)
def _m() -> dict[str, Any]:
    """Created lazily, once per process (inside the replica that records them)."""
    return {
        "requests": Counter("reengage_requests_total", description="HTTP requests by route and status",
                            tag_keys=("route", "status")),
        "latency": Histogram("reengage_request_latency_ms", description="HTTP request latency",
                             boundaries=LATENCY_MS, tag_keys=("route",)),
        "customers": Counter("reengage_customers_scored_total", description="customers scored, found or not",
                             tag_keys=("found",)),
        "feature_rows": Counter("reengage_feature_rows_total",
                                description="feature view rows read by state (ok, missing, expired, schema_mismatch)",
                                tag_keys=("view", "state")),
        "feature_latency": Histogram("reengage_feature_read_latency_ms", description="online feature read latency",
                                     boundaries=LATENCY_MS),
        "batch_rows": Histogram("reengage_model_batch_rows", description="rows per ONNX Runtime call (dynamic batching)",
                                boundaries=ROWS, tag_keys=("model", "version")),
        "model_latency": Histogram("reengage_model_latency_ms", description="ONNX Runtime call latency",
                                   boundaries=LATENCY_MS, tag_keys=("model", "version")),
        "decisions": Counter("reengage_bandit_decisions_total", description="bandit decisions by action and reason",
                             tag_keys=("action", "reason")),
        "rewards": Counter("reengage_bandit_rewards_total", description="rewards recorded", tag_keys=("action",)),
        "emails": Counter("reengage_emails_total", description="emails written, by backend and fallback",
                          tag_keys=("backend", "fallback")),
    }


def request(route: str, status: int, latency_ms: float) -> None:
    _m()["requests"].inc(1, tags={"route": route, "status": str(status)})
    _m()["latency"].observe(latency_ms, tags={"route": route})


def scored(found: np.ndarray) -> None:
    n_found = int(np.count_nonzero(found))
    if n_found:
        _m()["customers"].inc(n_found, tags={"found": "true"})
    if len(found) - n_found:
        _m()["customers"].inc(len(found) - n_found, tags={"found": "false"})


def feature_read(batch: Any, latency_ms: float) -> None:
    """Counts per view: ok / missing / expired / schema_mismatch (expired rows are not found)."""
    _m()["feature_latency"].observe(latency_ms)
    view_found = batch.view_found if batch.view_found is not None else np.repeat(batch.found[:, None], len(batch.views), 1)
    expired = getattr(batch, "expired", None)
    mismatch = getattr(batch, "schema_mismatch", None)
    for j, view in enumerate(batch.views):
        counts = {"ok": int(np.count_nonzero(view_found[:, j]))}
        counts["expired"] = int(np.count_nonzero(expired[:, j])) if expired is not None else 0
        counts["schema_mismatch"] = int(np.count_nonzero(mismatch[:, j])) if mismatch is not None else 0
        counts["missing"] = len(batch) - sum(counts.values())
        for state, n in counts.items():
            if n > 0:
                _m()["feature_rows"].inc(n, tags={"view": view, "state": state})


def model_call(model: str, version: str, rows: int, latency_ms: float) -> None:
    tags = {"model": model, "version": version}
    _m()["batch_rows"].observe(rows, tags=tags)
    _m()["model_latency"].observe(latency_ms, tags=tags)


def decisions(action: np.ndarray, reason: np.ndarray) -> None:
    keys = np.char.add(np.char.add(action.astype(str), "|"), reason.astype(str))
    values, counts = np.unique(keys, return_counts=True)
    for key, n in zip(values.tolist(), counts.tolist()):
        a, r = key.split("|")
        _m()["decisions"].inc(n, tags={"action": a, "reason": r})


def reward(action: str | None) -> None:
    _m()["rewards"].inc(1, tags={"action": str(action)})


def email(backend: str, fallback: bool) -> None:
    _m()["emails"].inc(1, tags={"backend": backend, "fallback": str(fallback).lower()})
