"""The ``/v1/monitor`` answer as typed values: drift per model version, actions, contact
rates by segment, replicas whose rows are missing.

``report.answer`` builds a ``MonitorReport``; the plane hands it to the route, and
``to_json`` gives the wire shape of ``protocol.monitor.MonitorReport`` (docs/api.md), key
for key and in that order, so the route encodes what it is given. Values are frozen and
plain (no arrays), so a report pickles as it is.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Thresholds:
    psi: float = 0.2
    min_rows: int = 1000

    def to_json(self) -> dict[str, Any]:
        return {"psi": self.psi, "min_rows": self.min_rows}


@dataclass(frozen=True, slots=True)
class Window:
    start: str  # ISO 8601, UTC, inclusive
    end: str  # exclusive
    rows: int  # rows scored in the window, every replica

    def to_json(self) -> dict[str, Any]:
        return {"start": self.start, "end": self.end, "rows": self.rows}


@dataclass(frozen=True, slots=True)
class ScoreBins:
    edges: tuple[float, ...]  # lo, the inner cuts, hi: bins are [missing, below, ..., above]
    reference: tuple[int, ...]
    current: tuple[int, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "edges": list(self.edges),
            "reference": list(self.reference),
            "current": list(self.current),
        }


@dataclass(frozen=True, slots=True)
class ScoreDrift:
    psi: float | None
    drift: bool
    bins: ScoreBins | None = None  # none without a reference: the key is left out

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"psi": self.psi, "drift": self.drift}
        if self.bins is not None:
            out["bins"] = self.bins.to_json()
        return out


@dataclass(frozen=True, slots=True)
class FeatureDrift:
    feature: str
    psi: float | None
    missing_rate: float
    out_of_range_rate: float
    drift: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "feature": self.feature,
            "psi": self.psi,
            "missing_rate": self.missing_rate,
            "out_of_range_rate": self.out_of_range_rate,
            "drift": self.drift,
        }


@dataclass(frozen=True, slots=True)
class VersionDrift:
    """One version's rows in the window against its reference."""

    version: str
    rows: int
    status: str  # ok | drift | insufficient_data | no_reference
    reference_rows: int | None
    score: ScoreDrift
    features: tuple[FeatureDrift, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "rows": self.rows,
            "status": self.status,
            "reference_rows": self.reference_rows,
            "score": self.score.to_json(),
            "features": [f.to_json() for f in self.features],
        }


@dataclass(frozen=True, slots=True)
class ModelDrift:
    """A model's versions, most rows first; on the wire the first one's fields stand at the
    top level beside ``versions`` (the version that scored most rows, without a rollout
    the only one)."""

    versions: tuple[VersionDrift, ...]  # never empty

    @property
    def main(self) -> VersionDrift:
        return self.versions[0]

    def to_json(self) -> dict[str, Any]:
        entries = [v.to_json() for v in self.versions]
        return {**entries[0], "versions": entries}


@dataclass(frozen=True, slots=True)
class Actions:
    decided: int
    share: Mapping[str, float]  # each action's share of the decisions, by name
    min_propensity: float | None

    def to_json(self) -> dict[str, Any]:
        return {
            "decided": self.decided,
            "share": dict(self.share),
            "min_propensity": self.min_propensity,
        }


@dataclass(frozen=True, slots=True)
class Segment:
    feature: str  # plan_tier | region | age_band
    value: str
    rows: int
    mean_churn: float | None
    contact_rate: float | None
    holdout_share: float | None
    contact_rate_ratio: float | None  # contact_rate over the overall rate (four-fifths rule)

    def to_json(self) -> dict[str, Any]:
        return {
            "feature": self.feature,
            "value": self.value,
            "rows": self.rows,
            "mean_churn": self.mean_churn,
            "contact_rate": self.contact_rate,
            "holdout_share": self.holdout_share,
            "contact_rate_ratio": self.contact_rate_ratio,
        }


@dataclass(frozen=True, slots=True)
class Lost:
    """A replica whose rows are not all in the window: stopped after its last flush, or its
    queue overran."""

    replica: str
    after: str | None  # its last flush (ISO): rows it saw after it are not counted
    dropped_rows: int
    reason: str  # stopped without flushing | queue overrun

    def to_json(self) -> dict[str, Any]:
        return {
            "replica": self.replica,
            "after": self.after,
            "dropped_rows": self.dropped_rows,
            "reason": self.reason,
        }


@dataclass(frozen=True, slots=True)
class MonitorReport:
    """The whole answer for one window."""

    window: Window
    status: str  # ok | drift | insufficient_data
    thresholds: Thresholds
    models: Mapping[str, ModelDrift]
    actions: Actions
    segments: tuple[Segment, ...]
    replicas: int  # replicas whose counts are in the window
    lost: tuple[Lost, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "window": self.window.to_json(),
            "status": self.status,
            "thresholds": self.thresholds.to_json(),
            "models": {name: m.to_json() for name, m in self.models.items()},
            "actions": self.actions.to_json(),
            "segments": [s.to_json() for s in self.segments],
            "replicas": self.replicas,
            "lost": [x.to_json() for x in self.lost],
        }
