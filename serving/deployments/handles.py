"""Typed clients over DeploymentHandles: the split topology's components.

Each client has the same async methods as the component it fronts, so the dataplane
calls a component the same way whether it lives in the ingress replica (fused) or in
its own deployment (split). Handle options are configured once here and cached, as
Ray's OpenAiIngress does.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import numpy as np
from ray.serve.handle import DeploymentHandle

from feature_store.batch import FeatureBatch
from serving.components.batching import Inputs
from serving.repository import TensorSpec


class RemoteFeatureLookup:
    def __init__(self, handle: DeploymentHandle) -> None:
        self._h = handle

    async def lookup(self, entity_ids: np.ndarray) -> FeatureBatch:
        return await self._h.lookup.remote(entity_ids)

    async def contact(self, entity_id: int, service: str = "email_writer") -> dict[str, Any]:
        return await self._h.contact.remote(entity_id, service)


class RemoteModel:
    def __init__(self, handle: DeploymentHandle) -> None:
        self._h = handle

    async def score(self, values: np.ndarray, names: tuple[str, ...],
                    version: str | None = None) -> tuple[str, np.ndarray]:
        return await self._h.score.remote(values, names, version)

    async def infer(self, inputs: Inputs, version: str | None = None) -> tuple[str, Inputs]:
        return await self._h.infer.remote(inputs, version)

    async def metadata(self, version: str | None = None) -> dict[str, Any]:
        return await self._h.metadata.remote(version)

    async def input_specs(self, version: str | None = None) -> tuple[TensorSpec, ...]:
        return await self._h.input_specs.remote(version)

    async def ready(self, version: str | None = None) -> bool:
        return await self._h.ready.remote(version)

    async def index(self) -> list[dict[str, str]]:
        return await self._h.index.remote()

    async def load(self) -> list[str]:
        return await self._h.load.remote()

    async def unload(self) -> None:
        await self._h.unload.remote()


class RemoteBandit:
    def __init__(self, handle: DeploymentHandle) -> None:
        self._h = handle

    async def decide(self, customer_ids: np.ndarray, batch: FeatureBatch, churn: np.ndarray,
                     engagement: np.ndarray, found: np.ndarray, model_versions: dict[str, str]) -> Any:
        return await self._h.decide.remote(customer_ids, batch, churn, engagement, found, model_versions)

    async def feedback(self, decision_id: str, reward: float) -> dict[str, Any]:
        return await self._h.feedback.remote(decision_id, reward)

    async def close(self) -> None:
        """Nothing to do: the bandit's own deployment flushes on its graceful stop."""


class RemoteWriter:
    def __init__(self, handle: DeploymentHandle) -> None:
        self._h = handle
        self._stream = handle.options(stream=True)

    async def write(self, facts: dict[str, Any], action: str, scores: dict[str, Any],
                    max_tokens: int | None = None, temperature: float | None = None) -> dict[str, Any]:
        return await self._h.write.remote(facts, action, scores, max_tokens, temperature)

    async def complete(self, request: Any) -> Any:
        return await self._h.complete.remote(request)

    def complete_stream(self, request: Any) -> AsyncIterator[str]:
        return self._stream.complete_stream.remote(request)

    async def models(self) -> Any:
        return await self._h.models.remote()

    async def ready(self) -> bool:
        return await self._h.ready.remote()
