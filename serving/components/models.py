"""The model service: every servable version of one model, batched by rows, and the
traffic policy between them.

Plain Python: batching is injected (``components.batching``), and so is the shared
desired state that carries repository load/unload calls and traffic policies to the
other replicas (``DesiredState``; a Ray actor in ``serving.deployments.control``, a
``ModelStates`` in-process). ``ModelService`` scores; what it owns does the rest:
``ReplicaSync`` (``components.replica``) follows the desired state on this replica,
``RolloutControl`` (``components.rollout_control``) changes it, ``ShadowScorer``
(``components.shadow``) scores the shadow's share off the answer.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from serving import metrics
from serving.components.batching import AsyncBatcher, Batcher, Inputs, RunGroup, rows_of
from serving.components.columns import FeatureColumns
from serving.components.desired import DesiredState, LocalDesiredState
from serving.components.explain import Explainers, Explanation
from serving.components.offload import offload
from serving.components.replica import ReplicaSync
from serving.components.rollout_control import RolloutControl, TrafficChange, TrafficReport
from serving.components.shadow import ShadowScorer, ShadowStats
from serving.components.traffic_policy import RowVersions, TrafficPolicy
from serving.errors import InvalidRequest, ModelNotFound, ModelNotReady
from serving.registry import ModelRegistry
from serving.repository import ModelSpec, TensorSpec
from serving.runtime import runtime_for
from serving.runtime.base import ModelRuntime
from serving.settings import ModelSettings

# LocalDesiredState: the ``desired`` a single process passes (re-exported for its callers)
__all__ = ["BatcherFactory", "LocalDesiredState", "ModelService", "RowVersions"]

log = logging.getLogger("reengage")

BatcherFactory = Callable[[RunGroup], Batcher]


class ModelService:
    """Scores rows with one model (any loaded version), merging concurrent calls.

    Concurrent calls are merged by the batcher into one runtime call per version (batch
    size in rows, capped by ``max_batch_size`` from config.pbtxt) and split back. With a
    traffic policy, ``score_rows`` assigns each customer its version (sticky hash), makes
    one call per version and scatters the rows back; the shadow version scores its share
    in a background task after the answer is on its way.
    """

    def __init__(
        self,
        name: str,
        settings: ModelSettings,
        *,
        batcher: BatcherFactory = AsyncBatcher,
        desired: DesiredState | None = None,
        poll: bool = False,
        replica: str | None = None,
    ) -> None:
        self.name = name
        self.settings = settings
        self.registry = ModelRegistry(
            settings.repo_path, lambda spec, ver: runtime_for(spec, ver, settings.intra_op_threads)
        )
        self._batcher = batcher(self.run_group)
        self.columns = FeatureColumns(name)
        desired = desired or LocalDesiredState()
        self.sync = ReplicaSync(
            name,
            settings,
            self.registry,
            desired,
            self.columns,
            self._configure,
            replica=replica or f"{socket.gethostname()}:{os.getpid()}:{id(self) & 0xFFFFFF:x}",
            poll=poll,
        )
        self.rollout = RolloutControl(name, settings, self.registry, desired, self.sync)
        self.shadow = ShadowScorer(name, settings, self.registry, self.columns, self._shadowing)
        self._explainers = Explainers(name, settings.intra_op_threads)
        self._configure(self.registry.load(name))

    def _configure(self, spec: ModelSpec) -> None:
        configured = self.settings.batch_wait_timeout_s
        wait = spec.max_queue_delay_s if configured is None else configured
        self._batcher.configure(max(spec.max_batch_size, 1), wait)

    def _shadowing(self) -> tuple[TrafficPolicy | None, ShadowStats | None]:
        return self.sync.policy, self.sync.shadow

    @property
    def policy(self) -> TrafficPolicy | None:
        """The traffic policy this replica serves under (None: the newest version)."""
        return self.sync.policy

    # -- scoring path -------------------------------------------------------------------
    async def score(
        self, values: np.ndarray, names: tuple[str, ...], version: str | None = None
    ) -> tuple[str, np.ndarray]:
        """P(label) per row of ``values`` (columns named ``names``): (version, (N,) float32)."""
        if not self.sync.started:
            await self.sync.ensure_started()
        policy = self.sync.policy
        if version is None and policy is not None:
            version = policy.default
        runtime = self._runtime(version)
        try:
            x = values[:, self.columns.index(names, runtime.version.version, runtime.features)]
        except (
            InvalidRequest
        ) as exc:  # the newest version needs features nobody reads: never the default
            if version is not None or not self.registry.reject(
                self.name, runtime.version.version, exc.message
            ):
                raise
            log.error(
                "model %s: version %s taken out of service: %s",
                self.name,
                runtime.version.version,
                exc,
            )
            return await self.score(values, names)
        # the runtime itself is the batch key: a request finishes on the version it started on
        outputs = await self._batcher.submit({runtime.inputs[0].name: x}, runtime)  # type: ignore[arg-type]
        return runtime.version.version, outputs[runtime.outputs[0].name].reshape(-1)

    async def score_rows(
        self, values: np.ndarray, names: tuple[str, ...], customer_ids: np.ndarray
    ) -> tuple[str, np.ndarray, RowVersions | None]:
        """``score`` under the traffic policy: (versions used, scores, per-row versions when
        the rows were split across versions, else None)."""
        if not self.sync.started:
            await self.sync.ensure_started()
        policy = self.sync.policy
        if policy is None:
            version, scores = await self.score(values, names)
            return version, scores, None
        codes, versions = policy.assign(customer_ids)
        used = (
            np.flatnonzero(np.bincount(codes, minlength=len(versions))) if len(codes) > 1 else codes
        )
        if len(used) <= 1:
            version, scores = await self.score(
                values, names, versions[int(used[0]) if len(used) else 0]
            )
            split: RowVersions | None = None
        else:
            masks = [codes == i for i in used.tolist()]
            parts = await asyncio.gather(
                *(self.score(values[m], names, versions[i]) for i, m in zip(used.tolist(), masks))
            )
            scores = np.empty(len(codes), np.float32)
            for m, (_, part) in zip(masks, parts):
                scores[m] = part
            version, split = (
                ",".join(versions[i] for i in used.tolist()),
                (codes, versions, policy.salt),
            )
        if policy.shadow is not None:
            self.shadow.spawn(policy, values, names, customer_ids, codes, scores)
        return version, scores, split

    def _runtime(self, version: str | None) -> ModelRuntime:
        try:
            return self.registry.get(self.name, version)
        except ModelNotFound as exc:
            if self.sync.unloaded:  # a server-side state, not the caller's mistake
                raise ModelNotReady(
                    f"model '{self.name}' is unloaded (repository unload); load it to serve",
                    field="model_name",
                ) from None
            raise exc

    async def run_group(self, inputs: list[Inputs], versions: list[Any]) -> list[Inputs]:
        """One runtime call per version over the concatenated rows, split back per call.

        ``versions`` holds the runtime each call resolved (or a version name)."""
        out: list[Inputs] = [{}] * len(inputs)
        for key in dict.fromkeys(versions):  # a handful of versions at most
            members = [i for i, v in enumerate(versions) if v is key or v == key]
            parts = [inputs[i] for i in members]
            merged = (
                parts[0]
                if len(parts) == 1
                else {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
            )
            rows = rows_of(merged)
            runtime = key if isinstance(key, ModelRuntime) else self.registry.get(self.name, key)
            version = runtime.version.version
            start = time.perf_counter()
            try:
                result = await offload(rows, self.settings.offload_rows, runtime.predict, merged)
            except Exception:
                if self.sync.policy is not None:
                    metrics.version_error(self.name, version)
                raise
            latency_ms = 1e3 * (time.perf_counter() - start)
            metrics.model_call(self.name, version, rows, latency_ms)
            policy, stats = self.sync.policy, self.sync.shadow
            if policy is not None:  # per-version evidence while a policy is set
                metrics.version_scored(
                    self.name, version, rows, result[runtime.outputs[0].name].reshape(-1)
                )
                if stats is not None and version == policy.default:
                    stats.default_call(latency_ms)
            if len(parts) == 1:
                out[members[0]] = result
                continue
            bounds = np.cumsum([rows_of(p) for p in parts])[:-1]
            split = {k: np.split(v, bounds) for k, v in result.items()}
            for j, i in enumerate(members):
                out[i] = {k: s[j] for k, s in split.items()}
        return out

    async def explain(
        self, values: np.ndarray, names: tuple[str, ...], version: str | None = None
    ) -> Explanation:
        """Contributions of each row by ``version`` (the policy's default, else the newest)."""
        policy = self.sync.policy
        if version is None and policy is not None:
            version = policy.default
        runtime = self._runtime(version)
        x = values[:, self.columns.index(names, runtime.version.version, runtime.features)]
        return await self._explainers.explain(runtime, x)

    # -- KServe v2 ------------------------------------------------------------------------
    async def infer(self, inputs: Inputs, version: str | None = None) -> tuple[str, Inputs]:
        """Batched like scoring when the request fits a batch, else one direct call."""
        if not self.sync.started:
            await self.sync.ensure_started()
        policy = self.sync.policy
        if version is None and policy is not None:
            version = policy.default
        runtime = self._runtime(version)
        resolved = runtime.version.version
        if runtime.spec.max_batch_size > 0 and rows_of(inputs) <= runtime.spec.max_batch_size:
            return resolved, await self._batcher.submit(inputs, runtime)  # type: ignore[arg-type]
        return resolved, await offload(
            rows_of(inputs), self.settings.offload_rows, runtime.predict, inputs
        )

    async def metadata(self, version: str | None = None) -> dict[str, Any]:
        policy = self.sync.policy
        runtime = self._runtime(version or (policy.default if policy else None))
        spec = runtime.spec
        return {
            "name": self.name,
            "versions": sorted(spec.policy_versions, key=int),
            "platform": spec.platform,
            "inputs": [t.to_dict() for t in spec.inputs],
            "outputs": [t.to_dict() for t in spec.outputs],
            "parameters": {
                "features": list(runtime.features),
                "version": runtime.version.version,
                **spec.parameters,
            },
        }

    async def input_specs(self, version: str | None = None) -> tuple[TensorSpec, ...]:
        return self._runtime(version).inputs

    async def ready(self, version: str | None = None) -> bool:
        if not self.sync.started:
            await self.sync.ensure_started()
        policy = self.sync.policy
        return self.registry.is_ready(self.name, version or (policy.default if policy else None))

    # -- administration (``components.api.Administration``) -------------------------------
    async def set_traffic(
        self,
        config: dict[str, Any] | None,
        feature_names: tuple[str, ...] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> TrafficChange:
        return await self.rollout.set_traffic(config, feature_names, extra)

    async def promote(self, version: str | None = None) -> TrafficChange:
        return await self.rollout.promote(version)

    async def rollback(self) -> TrafficChange:
        return await self.rollout.rollback()

    async def exclude_version(self, version: str, excluded: bool) -> TrafficChange:
        return await self.rollout.exclude_version(version, excluded)

    async def traffic(self) -> TrafficReport:
        return await self.rollout.traffic()

    async def index(self) -> list[dict[str, str]]:
        return [row for row in self.registry.index() if row["name"] == self.name]

    async def load(self) -> list[str]:
        return await self.sync.load_all()

    async def unload(self) -> None:
        await self.sync.unload_all()


if TYPE_CHECKING:  # mypy holds the service to the protocol the dataplane calls it through
    from serving.components.api import Model

    _model: type[Model] = ModelService
