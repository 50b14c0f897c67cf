"""Every metric reengage exports (name, labels, buckets), aggregated in-process.

Recording is the hot path's business, exporting is not: a request only adds to plain
dicts here (counters summed per label set, histogram samples appended), and an exporter
drains them on an interval (``serving.deployments.metrics_export`` pushes them to Ray's
metrics agent, one ``inc`` per label set), because a Ray metric call costs more than the
rest of a small request's bookkeeping (docs/benchmarks.md, "What moved the figures").

This module imports no Ray, so components and unit tests record and read metrics
without a cluster. Arrays are counted with numpy, never with a per-row loop.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

LATENCY_MS = (0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 5000)
ROWS = (1, 10, 100, 500, 1000, 2000, 5000, 10000, 20000)
FEATURE_STATES = ("ok", "expired", "schema_mismatch", "missing")


@dataclass(frozen=True)
class MetricDef:
    name: str
    kind: Literal["counter", "histogram", "gauge"]
    description: str
    tag_keys: tuple[str, ...] = ()
    boundaries: tuple[float, ...] = ()


DEFINITIONS: dict[str, MetricDef] = {
    m.name: m
    for m in (
        MetricDef(
            "reengage_requests_total",
            "counter",
            "HTTP requests by route and status",
            ("route", "status"),
        ),
        MetricDef(
            "reengage_request_latency_ms",
            "histogram",
            "HTTP request latency",
            ("route",),
            LATENCY_MS,
        ),
        MetricDef(
            "reengage_customers_scored_total",
            "counter",
            "customers scored, found or not",
            ("found",),
        ),
        MetricDef(
            "reengage_feature_rows_total",
            "counter",
            "feature view rows read by state (ok, missing, expired, schema_mismatch)",
            ("view", "state"),
        ),
        MetricDef(
            "reengage_feature_read_latency_ms",
            "histogram",
            "online feature read latency",
            (),
            LATENCY_MS,
        ),
        MetricDef(
            "reengage_model_batch_rows",
            "histogram",
            "rows per model runtime call (dynamic batching)",
            ("model", "version"),
            ROWS,
        ),
        MetricDef(
            "reengage_model_latency_ms",
            "histogram",
            "model runtime call latency",
            ("model", "version"),
            LATENCY_MS,
        ),
        MetricDef(
            "reengage_model_version_calls_total",
            "counter",
            "runtime calls per model version while a traffic policy is set",
            ("model", "version"),
        ),
        MetricDef(
            "reengage_model_version_rows_total",
            "counter",
            "rows scored per model version while a traffic policy is set",
            ("model", "version"),
        ),
        MetricDef(
            "reengage_model_version_errors_total",
            "counter",
            "failed runtime calls per model version",
            ("model", "version"),
        ),
        MetricDef(
            "reengage_model_version_scores_total",
            "counter",
            "score distribution per model version (rows per score decile, bucket = lower edge)",
            ("model", "version", "bucket"),
        ),
        MetricDef(
            "reengage_shadow_rows_total",
            "counter",
            "rows scored by a shadow version (not returned)",
            ("model", "version"),
        ),
        MetricDef(
            "reengage_shadow_errors_total", "counter", "failed shadow calls", ("model", "version")
        ),
        MetricDef(
            "reengage_shadow_skipped_rows_total",
            "counter",
            "rows a shadow did not score: "
            "models.shadow_max_tasks shadow calls were already running",
            ("model", "version"),
        ),
        MetricDef(
            "reengage_shadow_latency_ms",
            "histogram",
            "shadow runtime call latency",
            ("model", "version"),
            LATENCY_MS,
        ),
        MetricDef(
            "reengage_shadow_abs_diff_total",
            "counter",
            "rows by |shadow score - served score| (bucket = upper edge)",
            ("model", "version", "bucket"),
        ),
        MetricDef(
            "reengage_bandit_decisions_total",
            "counter",
            "bandit decisions by action and reason",
            ("action", "reason"),
        ),
        MetricDef("reengage_bandit_rewards_total", "counter", "rewards recorded", ("action",)),
        MetricDef(
            "reengage_bandit_dead_letters_total",
            "counter",
            "decision records set aside after failing every try (the dead-letter file)",
            ("router",),
        ),
        MetricDef(
            "reengage_bandit_dead_letter_rows_total",
            "counter",
            "decision rows in those records",
            ("router",),
        ),
        MetricDef(
            "reengage_audit_suppressed_total",
            "counter",
            "refused calls not written to the audit log (per-source rate limit)",
            (),
        ),
        MetricDef(
            "reengage_emails_total",
            "counter",
            "emails written, by backend and fallback",
            ("backend", "fallback"),
        ),
        # model monitoring over monitor.window_s, every replica's rows (each replica exports the
        # same application-wide value: aggregate with max, not sum)
        MetricDef(
            "reengage_monitor_feature_psi",
            "gauge",
            "PSI of an input feature against the version's reference",
            ("model", "version", "feature"),
        ),
        MetricDef(
            "reengage_monitor_score_psi",
            "gauge",
            "PSI of the score against the version's reference",
            ("model", "version"),
        ),
        MetricDef("reengage_monitor_rows", "gauge", "rows scored in the monitoring window", ()),
        MetricDef(
            "reengage_monitor_drift",
            "gauge",
            "1 when /v1/monitor says drift, 0 ok, -1 insufficient data",
            (),
        ),
        MetricDef(
            "reengage_monitor_segment_contact_rate",
            "gauge",
            "share of a segment's decided rows contacted",
            ("segment", "value"),
        ),
        MetricDef(
            "reengage_monitor_segment_contact_rate_ratio",
            "gauge",
            "a segment's contact rate over the overall rate (four-fifths rule)",
            ("segment", "value"),
        ),
    )
}

Key = tuple[str, tuple[str, ...]]


class Recorder:
    """Counters and histogram samples since the last ``drain``, per (metric, tag values)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()  # the exporter drains from another thread
        self._counts: dict[Key, float] = {}
        self._samples: dict[Key, list[float]] = {}
        self._gauges: dict[Key, float] = {}

    def inc(self, name: str, value: float, tags: tuple[str, ...] = ()) -> None:
        key = (name, tags)
        with self._lock:
            self._counts[key] = self._counts.get(key, 0.0) + value

    def observe(self, name: str, value: float, tags: tuple[str, ...] = ()) -> None:
        key = (name, tags)
        with self._lock:
            samples = self._samples.get(key)
            if samples is None:
                self._samples[key] = [value]
            else:
                samples.append(value)

    def set(self, name: str, value: float, tags: tuple[str, ...] = ()) -> None:
        with self._lock:
            self._gauges[(name, tags)] = value

    def drain_gauges(self) -> dict[Key, float]:
        """Gauge values set since the last drain (the latest of each)."""
        with self._lock:
            gauges, self._gauges = self._gauges, {}
        return gauges

    def drain(self) -> tuple[dict[Key, float], dict[Key, list[float]]]:
        """What was recorded since the last drain; the recorder starts empty again."""
        with self._lock:
            counts, self._counts = self._counts, {}
            samples, self._samples = self._samples, {}
        return counts, samples


RECORDER = Recorder()


def request(route: str, status: int, latency_ms: float) -> None:
    RECORDER.inc("reengage_requests_total", 1, (route, str(status)))
    RECORDER.observe("reengage_request_latency_ms", latency_ms, (route,))


def scored(found: np.ndarray) -> None:
    n_found = int(np.count_nonzero(found))
    if n_found:
        RECORDER.inc("reengage_customers_scored_total", n_found, ("true",))
    if len(found) - n_found:
        RECORDER.inc("reengage_customers_scored_total", len(found) - n_found, ("false",))


def feature_read(batch: Any, latency_ms: float) -> None:
    """Rows per view and state; expired and schema-mismatched rows count as not found."""
    RECORDER.observe("reengage_feature_read_latency_ms", latency_ms)
    n = len(batch)
    views = batch.views
    if batch.found.all() and (batch.view_found is None or batch.view_found.all()):
        for view in views:  # the common case: every row of every view read and fresh
            RECORDER.inc("reengage_feature_rows_total", n, (view, "ok"))
        return
    ok = (
        np.count_nonzero(batch.view_found, axis=0)
        if batch.view_found is not None
        else np.full(len(views), np.count_nonzero(batch.found))
    )
    expired = _per_view(getattr(batch, "expired", None), len(views))
    mismatch = _per_view(getattr(batch, "schema_mismatch", None), len(views))
    missing = n - ok - expired - mismatch
    for state, counts in zip(FEATURE_STATES, (ok, expired, mismatch, missing)):
        for view, count in zip(views, counts.tolist()):
            if count > 0:
                RECORDER.inc("reengage_feature_rows_total", count, (view, state))


def _per_view(mask: np.ndarray | None, n_views: int) -> np.ndarray:
    return np.zeros(n_views, dtype=np.int64) if mask is None else np.count_nonzero(mask, axis=0)


def model_call(model: str, version: str, rows: int, latency_ms: float) -> None:
    RECORDER.observe("reengage_model_batch_rows", rows, (model, version))
    RECORDER.observe("reengage_model_latency_ms", latency_ms, (model, version))


SCORE_BUCKETS = tuple(f"{b / 10:.1f}" for b in range(10))
DIFF_BUCKETS = (0.001, 0.01, 0.05, 0.1, 0.2, 0.5, 1.0)


def version_scored(model: str, version: str, rows: int, scores: np.ndarray) -> None:
    """Per-version evidence of one runtime call: calls, rows, scores by decile (one bincount);
    its latency is ``reengage_model_latency_ms``, labelled by version already."""
    tags = (model, version)
    RECORDER.inc("reengage_model_version_calls_total", 1, tags)
    RECORDER.inc("reengage_model_version_rows_total", rows, tags)
    if len(scores) == 1:  # the common call: no array work
        s = float(scores[0])
        if s == s:
            RECORDER.inc(
                "reengage_model_version_scores_total",
                1,
                (model, version, SCORE_BUCKETS[min(max(int(s * 10), 0), 9)]),
            )
        return
    finite = scores[np.isfinite(scores)]
    counts = np.bincount(np.minimum(np.maximum((finite * 10).astype(np.intp), 0), 9), minlength=10)
    for b in np.flatnonzero(counts).tolist():
        RECORDER.inc(
            "reengage_model_version_scores_total",
            int(counts[b]),
            (model, version, SCORE_BUCKETS[b]),
        )


def version_error(model: str, version: str) -> None:
    RECORDER.inc("reengage_model_version_errors_total", 1, (model, version))


def shadow_scored(model: str, version: str, latency_ms: float, diff: np.ndarray) -> None:
    tags = (model, version)
    RECORDER.inc("reengage_shadow_rows_total", len(diff), tags)
    RECORDER.observe("reengage_shadow_latency_ms", latency_ms, tags)
    counts = np.bincount(
        np.searchsorted(DIFF_BUCKETS, np.abs(np.nan_to_num(diff))), minlength=len(DIFF_BUCKETS) + 1
    )
    for b in np.flatnonzero(counts).tolist():
        edge = f"{DIFF_BUCKETS[b]:g}" if b < len(DIFF_BUCKETS) else "+Inf"
        RECORDER.inc("reengage_shadow_abs_diff_total", int(counts[b]), (model, version, edge))


def shadow_error(model: str, version: str) -> None:
    RECORDER.inc("reengage_shadow_errors_total", 1, (model, version))


def shadow_skipped(model: str, version: str, rows: int) -> None:
    RECORDER.inc("reengage_shadow_skipped_rows_total", rows, (model, version))


def decisions(
    arm_index: np.ndarray, reason_code: np.ndarray, arms: tuple[str, ...], reasons: tuple[str, ...]
) -> None:
    """Decisions per (action, reason) from codes, one bincount; no decision is action "None"."""
    if len(arm_index) == 1:  # a single customer: no bincount
        arm, reason = int(arm_index[0]), int(reason_code[0])
        RECORDER.inc(
            "reengage_bandit_decisions_total",
            1,
            (arms[arm] if arm >= 0 else "None", reasons[reason]),
        )
        return
    k = len(arms) + 1
    codes = (np.asarray(arm_index, np.int64) + 1) + k * np.asarray(reason_code, np.int64)
    counts = np.bincount(codes, minlength=1)
    for code in np.flatnonzero(counts).tolist():  # one per (action, reason) seen, not per row
        arm, reason = code % k - 1, code // k
        RECORDER.inc(
            "reengage_bandit_decisions_total",
            int(counts[code]),
            (arms[arm] if arm >= 0 else "None", reasons[reason]),
        )


def dead_letter(router: str, rows: int) -> None:
    RECORDER.inc("reengage_bandit_dead_letters_total", 1, (router,))
    RECORDER.inc("reengage_bandit_dead_letter_rows_total", rows, (router,))


def audit_suppressed(count: int) -> None:
    RECORDER.inc("reengage_audit_suppressed_total", count)


def reward(action: str | None) -> None:
    RECORDER.inc("reengage_bandit_rewards_total", 1, (str(action),))


def email(backend: str, fallback: bool) -> None:
    RECORDER.inc("reengage_emails_total", 1, (backend, str(fallback).lower()))


def monitor_report(answer: dict[str, Any]) -> None:
    """The gauges of one ``/v1/monitor`` answer (a missing PSI is not set)."""
    RECORDER.set("reengage_monitor_rows", float(answer["window"]["rows"]))
    RECORDER.set("reengage_monitor_drift", {"drift": 1.0, "ok": 0.0}.get(answer["status"], -1.0))
    for model, entry in answer["models"].items():
        for v in entry["versions"]:
            if v["score"]["psi"] is not None:
                RECORDER.set("reengage_monitor_score_psi", v["score"]["psi"], (model, v["version"]))
            for f in v["features"]:
                if f["psi"] is not None:
                    RECORDER.set(
                        "reengage_monitor_feature_psi",
                        f["psi"],
                        (model, v["version"], f["feature"]),
                    )
    for seg in answer["segments"]:
        tags = (seg["feature"], seg["value"])
        if seg["contact_rate"] is not None:
            RECORDER.set("reengage_monitor_segment_contact_rate", seg["contact_rate"], tags)
        if seg["contact_rate_ratio"] is not None:
            RECORDER.set(
                "reengage_monitor_segment_contact_rate_ratio", seg["contact_rate_ratio"], tags
            )
