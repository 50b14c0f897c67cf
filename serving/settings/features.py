"""Where the data and the online features come from: the synthetic data set, the Feast
repository, the online store's backend and its deadlines."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from serving.settings.base import Section, project_root


class DataSettings(Section):
    customers: int = Field(100_000, ge=100, description="synthetic customers to generate")
    seed: int = 7
    snapshots: int = Field(
        2, ge=2, description="feature snapshots per customer (point-in-time joins)"
    )


class FeatureSettings(Section):
    repo_path: Path = Field(default_factory=lambda: project_root() / "feature_store")
    # "embedded" (no server, default) or "redis": selects feature_store.yaml /
    # feature_store.redis.yaml
    backend: Literal["embedded", "redis"] = "embedded"
    redis_url: str = "redis://127.0.0.1:6379/0"
    # "packed": our vectorized batch reader; "feast": Feast's own get_online_features
    reader: Literal["packed", "feast"] = "packed"
    # what a stale or missing feature view means: score with the view's defaults and say
    # so, or answer found: false
    on_missing_view: Literal["defaults", "not_found"] = "not_found"
    timeout_s: float = Field(0.25, gt=0, description="fail fast when the online store is slow")
    # embedded (LMDB) reads of fewer rows run inline on the event loop
    # (serving/components/offload.py); Redis reads always run in a thread
    offload_rows: int = Field(16_384, ge=0)

    @property
    def yaml_file(self) -> Path:
        name = "feature_store.yaml" if self.backend == "embedded" else "feature_store.redis.yaml"
        return self.repo_path / name
