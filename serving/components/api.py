"""What the dataplane needs of each component, as structural types.

A component in-process (fused topology) and a typed client of its deployment (split,
``serving.deployments.handles``) both satisfy these, so the dataplane never knows where
a component runs.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Protocol

import numpy as np

from feature_store.batch import FeatureBatch
from serving.components.bandit_answers import Feedback, LogErasure
from serving.bandit.router import Decisions
from serving.components.batching import Inputs
from serving.components.evidence import LogStats
from serving.components.explain import Explanation
from serving.components.rollout_control import TrafficChange, TrafficReport
from serving.components.traffic_policy import RowVersions
from serving.repository import TensorSpec


class Features(Protocol):
    async def lookup(self, entity_ids: np.ndarray) -> FeatureBatch: ...

    async def contact(self, entity_id: int, service: str = "email_writer") -> dict[str, Any]: ...

    async def forget(
        self, customer_id: int, suppressed: list[str], key_source: str
    ) -> dict[str, int]: ...

    async def ready(self) -> bool: ...


class Scoring(Protocol):
    """The request path of a model: scores, explanations, KServe v2 inference."""

    async def score(
        self, values: np.ndarray, names: tuple[str, ...], version: str | None = None
    ) -> tuple[str, np.ndarray]: ...

    async def score_rows(
        self, values: np.ndarray, names: tuple[str, ...], customer_ids: np.ndarray
    ) -> tuple[str, np.ndarray, RowVersions | None]: ...

    async def explain(
        self, values: np.ndarray, names: tuple[str, ...], version: str | None = None
    ) -> Explanation: ...

    async def infer(self, inputs: Inputs, version: str | None = None) -> tuple[str, Inputs]: ...

    async def metadata(self, version: str | None = None) -> dict[str, Any]: ...

    async def input_specs(self, version: str | None = None) -> tuple[TensorSpec, ...]: ...

    async def ready(self, version: str | None = None) -> bool: ...


class Administration(Protocol):
    """What changes a model on every replica: traffic policy, versions, repository."""

    async def set_traffic(
        self,
        config: dict[str, Any] | None,
        feature_names: tuple[str, ...] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> TrafficChange: ...

    async def promote(self, version: str | None = None) -> TrafficChange: ...

    async def rollback(self) -> TrafficChange: ...

    async def exclude_version(self, version: str, excluded: bool) -> TrafficChange: ...

    async def traffic(self) -> TrafficReport: ...

    async def index(self) -> list[dict[str, str]]: ...

    async def load(self) -> list[str]: ...

    async def unload(self) -> None: ...


class Model(Scoring, Administration, Protocol):
    """A model service (``components.models.ModelService``) or its deployment's client."""


class Bandit(Protocol):
    async def decide(
        self,
        customer_ids: np.ndarray,
        batch: FeatureBatch,
        churn: np.ndarray,
        engagement: np.ndarray,
        found: np.ndarray,
        model_versions: dict[str, str],
        opted_out: np.ndarray | None = None,
    ) -> Decisions: ...

    async def feedback(self, decision_id: str, reward: float) -> Feedback: ...

    async def erase(self, customer_id: int) -> LogErasure: ...

    async def evidence(self, model: str, since: float) -> LogStats: ...

    async def close(self) -> None: ...


class Writer(Protocol):
    async def write(
        self,
        facts: dict[str, Any],
        action: str,
        scores: dict[str, Any],
        max_tokens: int | None = None,
        temperature: float | None = None,
        adapter: str | None = None,
    ) -> dict[str, Any]: ...

    async def complete(self, request: Any) -> Any: ...

    def complete_stream(self, request: Any) -> AsyncIterator[str]: ...

    async def models(self) -> Any: ...

    async def ready(self) -> bool: ...
