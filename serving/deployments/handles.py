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
from serving.components.bandit import Feedback
from serving.components.batching import Inputs
from serving.components.explain import Explanation
from serving.deployments.failures import named
from serving.repository import TensorSpec


class RemoteFeatureLookup:
    def __init__(self, handle: DeploymentHandle) -> None:
        self._h = named(handle, "feature lookup")  # a dead replica is a 503 naming it

    async def lookup(self, entity_ids: np.ndarray) -> FeatureBatch:
        return await self._h.lookup.remote(entity_ids)

    async def contact(self, entity_id: int, service: str = "email_writer") -> dict[str, Any]:
        return await self._h.contact.remote(entity_id, service)

    async def forget(
        self, customer_id: int, suppressed: list[str], key_source: str
    ) -> dict[str, int]:
        return await self._h.forget.remote(customer_id, suppressed, key_source)

    async def ready(self) -> bool:
        return await self._h.ready.remote()


class RemoteModel:
    def __init__(self, handle: DeploymentHandle) -> None:
        self._h = named(handle)

    async def score(
        self, values: np.ndarray, names: tuple[str, ...], version: str | None = None
    ) -> tuple[str, np.ndarray]:
        return await self._h.score.remote(values, names, version)

    async def explain(
        self, values: np.ndarray, names: tuple[str, ...], version: str | None = None
    ) -> Explanation:
        return await self._h.explain.remote(values, names, version)

    async def score_rows(
        self, values: np.ndarray, names: tuple[str, ...], customer_ids: np.ndarray
    ) -> tuple[str, np.ndarray, Any]:
        return await self._h.score_rows.remote(values, names, customer_ids)

    async def set_traffic(
        self,
        config: dict[str, Any] | None,
        feature_names: tuple[str, ...] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        return await self._h.set_traffic.remote(config, feature_names, extra)

    async def promote(self, version: str | None = None) -> dict[str, Any]:
        return await self._h.promote.remote(version)

    async def rollback(self) -> dict[str, Any]:
        return await self._h.rollback.remote()

    async def exclude_version(self, version: str, excluded: bool) -> dict[str, Any]:
        return await self._h.exclude_version.remote(version, excluded)

    async def traffic(self) -> dict[str, Any]:
        return await self._h.traffic.remote()

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
        self._h = named(handle, "bandit router")

    async def decide(
        self,
        customer_ids: np.ndarray,
        batch: FeatureBatch,
        churn: np.ndarray,
        engagement: np.ndarray,
        found: np.ndarray,
        model_versions: dict[str, str],
        opted_out: np.ndarray | None = None,
    ) -> Any:
        return await self._h.decide.remote(
            customer_ids, batch, churn, engagement, found, model_versions, opted_out
        )

    async def feedback(self, decision_id: str, reward: float) -> Feedback:
        return await self._h.feedback.remote(decision_id, reward)

    async def erase(self, customer_id: int) -> dict[str, int]:
        return await self._h.erase.remote(customer_id)

    async def close(self) -> None:
        """Nothing to do: the bandit's own deployment flushes on its graceful stop."""


class RemoteWriter:
    def __init__(self, handle: DeploymentHandle, deadline_s: float | None = None) -> None:
        # "the email writer is unavailable", not "ActorDiedError"; a frozen writer enforces no
        # deadline of its own, so the caller stops waiting after ``deadline_s`` (504).
        # Ray actor calls, not Serve's gRPC transport (the default with
        # RAY_SERVE_THROUGHPUT_OPTIMIZED): over gRPC a unary call learns that the replica
        # accepted it only with its answer, so a call in flight on a writer that dies looks
        # never accepted and Serve sends it again to the fresh, cold replica, where it waits
        # out the deadline (a 504). An actor call is accepted first, so its
        # replica's death reaches the caller at once as ActorDiedError: our prompt 503.
        self._h = named(handle.options(_by_reference=True), "email writer", deadline_s)
        self._stream = self._h.options(stream=True)

    async def write(
        self,
        facts: dict[str, Any],
        action: str,
        scores: dict[str, Any],
        max_tokens: int | None = None,
        temperature: float | None = None,
        adapter: str | None = None,
    ) -> dict[str, Any]:
        return await self._h.write.remote(facts, action, scores, max_tokens, temperature, adapter)

    async def complete(self, request: Any) -> Any:
        return await self._h.complete.remote(request)

    def complete_stream(self, request: Any) -> AsyncIterator[str]:
        return self._stream.complete_stream.remote(request)

    async def models(self) -> Any:
        return await self._h.models.remote()

    async def ready(self) -> bool:
        return await self._h.ready.remote()
