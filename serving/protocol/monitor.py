"""Wire types of ``GET /v1/monitor`` and the model card route (the answers' schema in
OpenAPI; the dataplane builds the JSON itself)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class _Answer(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())


class Window(_Answer):
    start: str = Field(description="ISO 8601, UTC, inclusive")
    end: str = Field(description="ISO 8601, UTC, exclusive")
    rows: int = Field(description="rows scored in the window, every replica")


class Thresholds(_Answer):
    psi: float
    min_rows: int


class ScoreBins(_Answer):
    edges: list[float] = Field(
        description="lo, the inner cuts, hi: bins are [missing, below, ..., above]"
    )
    reference: list[int]
    current: list[int]


class ScoreDrift(_Answer):
    psi: float | None
    drift: bool
    bins: ScoreBins | None = None


class FeatureDrift(_Answer):
    feature: str
    psi: float | None
    missing_rate: float
    out_of_range_rate: float
    drift: bool


class VersionDrift(_Answer):
    version: str
    rows: int
    status: Literal["ok", "drift", "insufficient_data", "no_reference"]
    reference_rows: int | None
    score: ScoreDrift
    features: list[FeatureDrift]


class ModelDrift(VersionDrift):
    """The version that scored most rows in the window; ``versions``: each one (a rollout)."""

    versions: list[VersionDrift]


class Actions(_Answer):
    decided: int
    share: dict[str, float]
    min_propensity: float | None


class Segment(_Answer):
    feature: Literal["plan_tier", "region", "age_band"]
    value: str
    rows: int
    mean_churn: float | None
    contact_rate: float | None
    holdout_share: float | None
    contact_rate_ratio: float | None = Field(
        description="contact_rate over the overall rate (four-fifths rule)"
    )


class Lost(_Answer):
    replica: str
    after: str | None = Field(description="its last flush: rows it saw after it are not counted")
    dropped_rows: int
    reason: Literal["stopped without flushing", "queue overrun"]


class MonitorReport(_Answer):
    window: Window
    status: Literal["ok", "drift", "insufficient_data"]
    thresholds: Thresholds
    models: dict[str, ModelDrift]
    actions: Actions
    segments: list[Segment]
    replicas: int = Field(description="replicas whose counts are in the window")
    lost: list[Lost]


class ModelCard(_Answer):
    name: str
    version: str
    format: Literal["markdown"] = "markdown"
    text: str
