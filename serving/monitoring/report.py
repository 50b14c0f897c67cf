"""The ``/v1/monitor`` answer: every replica's buckets in a window, against the references.

Reads the per-second documents of the window's minutes from the shared state, sums them
(every replica, every second in ``[start, end]``), and compares each model version's
feature and score bins with its reference by PSI. Status: ``insufficient_data`` below
``min_rows`` scored rows (never ``ok``), ``drift`` when any version with enough rows has a
feature or score PSI above the threshold, else ``ok``. A version without a reference is
reported as ``no_reference`` and never counts as drift.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import numpy as np

from serving.monitoring.collector import BUCKET_NS, REPLICAS_NS
from serving.monitoring.reference import Binner, References, psi
from serving.monitoring.report_types import (
    Actions,
    FeatureDrift,
    Lost,
    ModelDrift,
    MonitorReport,
    ScoreBins,
    ScoreDrift,
    Segment,
    Thresholds,
    VersionDrift,
    Window,
)
from serving.monitoring.segments import segment_names
from serving.shared_state import SharedState


@dataclass
class _Version:
    rows: int = 0
    features: np.ndarray | None = None
    score: np.ndarray | None = None


@dataclass
class Totals:
    """The window's sums over every replica and second."""

    rows: int = 0
    decided: int = 0
    contacts: int = 0
    holdouts: int = 0
    churn_sum: float = 0.0
    min_propensity: float | None = None
    buckets: int = 0

    def __post_init__(self) -> None:
        self.actions: dict[str, int] = {}
        self.segments = np.zeros((len(segment_names()), 5))
        self.versions: dict[tuple[str, str], _Version] = {}
        self.replicas: set[str] = set()

    def add(self, doc: dict[str, Any]) -> None:
        self.buckets += 1
        self.replicas.add(doc["replica"])
        for k in ("rows", "decided", "contacts", "holdouts"):
            setattr(self, k, getattr(self, k) + int(doc[k]))
        self.churn_sum += float(doc["churn_sum"])
        for arm, c in doc["actions"].items():
            self.actions[arm] = self.actions.get(arm, 0) + int(c)
        low = doc.get("min_propensity")
        if low is not None:
            self.min_propensity = (
                low if self.min_propensity is None else min(self.min_propensity, low)
            )
        seg = np.asarray(doc["segments"], np.float64)
        if seg.shape == self.segments.shape:
            self.segments += seg
        for model, versions in doc["models"].items():
            for version, c in versions.items():
                v = self.versions.setdefault((model, version), _Version())
                v.rows += int(c["rows"])
                for name in ("features", "score"):
                    if c[name] is not None:
                        arr = np.asarray(c[name], np.int64)
                        old = getattr(v, name)
                        setattr(v, name, arr if old is None or len(old) != len(arr) else old + arr)


def read_window(store: SharedState, start: int, end: int) -> Totals:
    """Sum every replica's buckets with ``start <= t <= end`` (epoch seconds)."""
    totals = Totals()
    for minute in range(start // 60, end // 60 + 1):
        for doc in store.items(BUCKET_NS + str(minute)).values():
            if start <= int(doc["t"]) <= end:
                totals.add(doc)
    return totals


def lost(store: SharedState, start: int, end: int, now: float) -> list[Lost]:
    """Replicas that stopped without closing after flushing within the window: the rows they
    saw after that flush (at most one flush interval) are not in the answer."""
    out = []
    for replica, doc in sorted(store.items(REPLICAS_NS).items()):
        flushed, interval = float(doc["flushed"]), float(doc.get("flush_interval_s", 1.0))
        dead = not doc["closed"] and flushed < now - max(3 * interval, 2.0)
        if (dead and start - interval <= flushed <= end) or doc.get("dropped_rows", 0):
            out.append(
                Lost(
                    replica=replica,
                    after=iso(flushed) if dead else None,
                    dropped_rows=int(doc.get("dropped_rows", 0)),
                    reason="stopped without flushing" if dead else "queue overrun",
                )
            )
    return out


def answer(
    totals: Totals,
    references: References,
    thresholds: Thresholds,
    start: int,
    end: int,
    lost_rows: list[Lost],
) -> MonitorReport:
    """The answer (``MonitorReport.to_json``: the shape docs/api.md gives)."""
    models: dict[str, ModelDrift] = {}
    for model in sorted({m for m, _ in totals.versions}):
        models[model] = ModelDrift(
            tuple(
                _version_entry(version, v, references.get(model, version), thresholds)
                for (m, version), v in sorted(totals.versions.items(), key=lambda kv: -kv[1].rows)
                if m == model
            )
        )
    if totals.rows < thresholds.min_rows:
        status = "insufficient_data"
    else:
        drifted = any(e.status == "drift" for m in models.values() for e in m.versions)
        status = "drift" if drifted else "ok"
    return MonitorReport(
        window=Window(iso(start), iso(end + 1), totals.rows),
        status=status,
        thresholds=thresholds,
        models=models,
        actions=_actions(totals),
        segments=_segments(totals),
        replicas=len(totals.replicas),
        lost=tuple(lost_rows),
    )


def _version_entry(
    version: str, v: _Version, binner: Binner | None, thresholds: Thresholds
) -> VersionDrift:
    if binner is None or v.features is None or v.score is None or len(v.features) != binner.total:
        return VersionDrift(version, v.rows, "no_reference", None, ScoreDrift(None, False), ())
    enough = v.rows >= thresholds.min_rows
    features = []
    for name, ref, cur in zip(
        binner.features, binner.split(binner.reference), binner.split(v.features)
    ):
        value = psi(ref, cur)
        n = max(int(cur.sum()), 1)
        features.append(
            FeatureDrift(
                feature=name,
                psi=value,
                missing_rate=float(cur[0]) / n,
                out_of_range_rate=float(cur[1] + cur[-1]) / n,
                drift=bool(enough and value is not None and value > thresholds.psi),
            )
        )
    score_psi = psi(binner.score_reference, v.score)
    score = ScoreDrift(
        psi=score_psi,
        drift=bool(enough and score_psi is not None and score_psi > thresholds.psi),
        bins=ScoreBins(
            edges=(*binner.score_edges.tolist(), binner.score_hi),
            reference=tuple(binner.score_reference.tolist()),
            current=tuple(v.score.tolist()),
        ),
    )
    drift = score.drift or any(f.drift for f in features)
    status = "insufficient_data" if not enough else ("drift" if drift else "ok")
    return VersionDrift(version, v.rows, status, binner.rows, score, tuple(features))


def _actions(t: Totals) -> Actions:
    decided = sum(t.actions.values())
    return Actions(
        decided=decided,
        share={a: c / decided for a, c in sorted(t.actions.items())} if decided else {},
        min_propensity=t.min_propensity,
    )


def _segments(t: Totals) -> tuple[Segment, ...]:
    overall = t.contacts / t.decided if t.decided else None
    out = []
    for (label, value), (rows, churn, decided, contacts, holdouts) in zip(
        segment_names(), t.segments.tolist()
    ):
        rate = contacts / decided if decided else None
        out.append(
            Segment(
                feature=label,
                value=value,
                rows=int(rows),
                mean_churn=churn / rows if rows else None,
                contact_rate=rate,
                holdout_share=holdouts / decided if decided else None,
                contact_rate_ratio=rate / overall if rate is not None and overall else None,
            )
        )
    return tuple(out)


def iso(t: float) -> str:
    return (
        datetime.fromtimestamp(t, timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")
    )


def report(
    store: SharedState,
    references: References,
    thresholds: Thresholds,
    start: int,
    end: int,
    now: float | None = None,
) -> MonitorReport:
    """The answer for ``[start, end]`` (epoch seconds, inclusive): blocking store reads."""
    now = time.time() if now is None else now
    return answer(
        read_window(store, start, end),
        references,
        thresholds,
        start,
        end,
        lost(store, start, end, now),
    )
