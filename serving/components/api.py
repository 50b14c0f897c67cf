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
from serving.components.bandit import Feedback
from serving.components.batching import Inputs
from serving.components.explain import Explanation
from serving.repository import TensorSpec


class Features(Protocol):
    async def lookup(self, entity_ids: np.ndarray) -> FeatureBatch: ...

    async def contact(self, entity_id: int, service: str = "email_writer") -> dict[str, Any]: ...

    async def forget(
        self, customer_id: int, suppressed: list[str], key_source: str
    ) -> dict[str, int]: ...

    async def ready(self) -> bool: ...


class Model(Protocol):
    async def score(
        self, values: np.ndarray, names: tuple[str, ...], version: str | None = None
    ) -> tuple[str, np.ndarray]: ...

    async def explain(
        self, values: np.ndarray, names: tuple[str, ...], version: str | None = None
    ) -> Explanation: ...

    async def score_rows(
        self, values: np.ndarray, names: tuple[str, ...], customer_ids: np.ndarray
    ) -> tuple[str, np.ndarray, Any]: ...

    async def set_traffic(
        self,
        config: dict[str, Any] | None,
        feature_names: tuple[str, ...] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> dict[str, Any]: ...

    async def promote(self, version: str | None = None) -> dict[str, Any]: ...

    async def rollback(self) -> dict[str, Any]: ...

    async def exclude_version(self, version: str, excluded: bool) -> dict[str, Any]: ...

    async def traffic(self) -> dict[str, Any]: ...

    async def infer(self, inputs: Inputs, version: str | None = None) -> tuple[str, Inputs]: ...

    async def metadata(self, version: str | None = None) -> dict[str, Any]: ...

    async def input_specs(self, version: str | None = None) -> tuple[TensorSpec, ...]: ...

    async def ready(self, version: str | None = None) -> bool: ...

    async def index(self) -> list[dict[str, str]]: ...

    async def load(self) -> list[str]: ...

    async def unload(self) -> None: ...


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
    ) -> Any: ...

    async def feedback(self, decision_id: str, reward: float) -> Feedback: ...

    async def erase(self, customer_id: int) -> dict[str, int]: ...

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
