"""The model service: every servable version of one model, batched by rows, and the
traffic policy between them.

Plain Python: batching is injected (``components.batching``), and so is the shared
desired state that carries repository load/unload calls and traffic policies to the
other replicas (``DesiredState``; a Ray actor in ``serving.deployments.control``, a
``ModelStates`` in-process). A policy change takes effect on every replica at one
moment (``activate_at``), after each replica has loaded and warmed its versions.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from serving import metrics
from serving.components.batching import AsyncBatcher, Batcher, Inputs, RunGroup, rows_of
from serving.components.explain import Explainers, Explanation
from serving.components.offload import offload
from serving.components.traffic_policy import (
    DesiredState,
    LocalDesiredState,
    ShadowStats,
    TrafficPolicy,
)
from serving.components.rollout_control import TrafficControl
from serving.errors import Conflict, InvalidRequest, ModelNotFound, ModelNotReady
from serving.registry import ModelRegistry
from serving.repository import ModelSpec, TensorSpec, read_model
from serving.runtime import runtime_for
from serving.runtime.base import ModelRuntime
from serving.settings import ModelSettings, TrafficPolicyConfig

log = logging.getLogger("reengage")
shadow_log = logging.getLogger("reengage.shadow")

BatcherFactory = Callable[[RunGroup], Batcher]
# a split batch: per row an index into the versions, and the salt it was assigned under
RowVersions = tuple[np.ndarray, tuple[str, ...], str]


class ModelService(TrafficControl):
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
        self.replica = replica or f"{socket.gethostname()}:{os.getpid()}:{id(self) & 0xFFFFFF:x}"
        self._batcher = batcher(self.run_group)
        self._desired = desired or LocalDesiredState()
        self._poll_enabled = poll and settings.poll_interval_s > 0
        self._columns: dict[tuple[tuple[str, ...], str], np.ndarray] = {}
        self._names: tuple[str, ...] | None = (
            None  # the feature layout last scored (signature checks)
        )
        self._generation = 0
        self._epoch: str | None = (
            None  # the desired state's epoch (a restarted actor starts a new one)
        )
        self._poller: asyncio.Task[None] | None = None
        self._started = False
        self._start_task: asyncio.Task[None] | None = None
        self._policy: TrafficPolicy | None = None
        self._pending: asyncio.TimerHandle | None = None
        self._excluded: tuple[str, ...] = ()
        self._unloaded = False
        self._loads: Any = (
            None  # the last repository load call seen (another replica's re-reads disk)
        )
        self._applied: dict[str, Any] = {"generation": 0, "ok": True, "cause": None}
        self._shadow: ShadowStats | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._explainers = Explainers(name, settings.intra_op_threads)
        self._configure(self.registry.load(name))

    def _configure(self, spec: ModelSpec) -> None:
        configured = self.settings.batch_wait_timeout_s
        wait = spec.max_queue_delay_s if configured is None else configured
        self._batcher.configure(max(spec.max_batch_size, 1), wait)

    @property
    def policy(self) -> TrafficPolicy | None:
        return self._policy

    # -- scoring path -------------------------------------------------------------------
    async def score(
        self, values: np.ndarray, names: tuple[str, ...], version: str | None = None
    ) -> tuple[str, np.ndarray]:
        """P(label) per row of ``values`` (columns named ``names``): (version, (N,) float32)."""
        if not self._started:
            await self._ensure_started()
        if version is None and self._policy is not None:
            version = self._policy.default
        runtime = self._runtime(version)
        try:
            x = values[:, self._column_index(names, runtime.version.version, runtime.features)]
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
        if not self._started:
            await self._ensure_started()
        policy = self._policy
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
            self._spawn_shadow(policy, values, names, customer_ids, codes, scores)
        return version, scores, split

    def _runtime(self, version: str | None) -> ModelRuntime:
        try:
            return self.registry.get(self.name, version)
        except ModelNotFound as exc:
            if self._unloaded:  # a server-side state, not the caller's mistake
                raise ModelNotReady(
                    f"model '{self.name}' is unloaded (repository unload); load it to serve",
                    field="model_name",
                ) from None
            raise exc

    def _column_index(
        self, names: tuple[str, ...], version: str, features: tuple[str, ...]
    ) -> np.ndarray:
        """The model's columns among the features read, computed once per layout."""
        key = (names, version)
        index = self._columns.get(key)
        if index is None:
            self._names = names
            pos = {n: i for i, n in enumerate(names)}
            missing = [f for f in features if f not in pos]
            if missing:
                raise InvalidRequest(
                    f"model {self.name} v{version} needs features not read: {missing}"
                )
            index = self._columns[key] = np.array([pos[f] for f in features], dtype=np.intp)
        return index

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
                if self._policy is not None:
                    metrics.version_error(self.name, version)
                raise
            latency_ms = 1e3 * (time.perf_counter() - start)
            metrics.model_call(self.name, version, rows, latency_ms)
            if self._policy is not None:  # per-version evidence while a policy is set
                metrics.version_scored(
                    self.name, version, rows, result[runtime.outputs[0].name].reshape(-1)
                )
                if self._shadow is not None and version == self._policy.default:
                    self._shadow.default_call(latency_ms)
            if len(parts) == 1:
                out[members[0]] = result
                continue
            bounds = np.cumsum([rows_of(p) for p in parts])[:-1]
            split = {k: np.split(v, bounds) for k, v in result.items()}
            for j, i in enumerate(members):
                out[i] = {k: s[j] for k, s in split.items()}
        return out

    # -- shadow ---------------------------------------------------------------------------
    def _spawn_shadow(
        self,
        policy: TrafficPolicy,
        values: np.ndarray,
        names: tuple[str, ...],
        customer_ids: np.ndarray,
        codes: np.ndarray,
        served: np.ndarray,
    ) -> None:
        """Rows in the shadow's share that the default served, scored again in a task."""
        rows = policy.shadow_mask(customer_ids) & (codes == 0)
        if not rows.any():
            return
        if (
            len(self._tasks) >= self.settings.shadow_max_tasks
        ):  # bounded: a slow shadow sheds, counted
            metrics.shadow_skipped(self.name, policy.shadow or "", int(rows.sum()))
            return
        task = asyncio.get_running_loop().create_task(
            self._score_shadow(policy, values[rows], names, customer_ids[rows], served[rows])
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _score_shadow(
        self,
        policy: TrafficPolicy,
        values: np.ndarray,
        names: tuple[str, ...],
        customer_ids: np.ndarray,
        served: np.ndarray,
    ) -> None:
        await asyncio.sleep(0)  # let the request finish first: the shadow is off the critical path
        version = policy.shadow or ""
        try:
            runtime = self.registry.get(self.name, version)
            x = values[:, self._column_index(names, version, runtime.features)]
            start = time.perf_counter()
            out = await offload(
                len(x), self.settings.offload_rows, runtime.predict, {runtime.inputs[0].name: x}
            )
            latency_ms = 1e3 * (time.perf_counter() - start)
        except Exception as exc:  # a broken shadow never touches the answer
            metrics.shadow_error(self.name, version)
            log.warning("shadow %s v%s failed: %s", self.name, version, exc)
            return
        scores = out[runtime.outputs[0].name].reshape(-1)
        metrics.shadow_scored(self.name, version, latency_ms, scores - served)
        if self._shadow is not None and self._policy is policy:
            self._shadow.add(served, scores, latency_ms)
        if shadow_log.isEnabledFor(logging.INFO):
            shadow_log.info(
                json.dumps(
                    {
                        "model": self.name,
                        "default": policy.default,
                        "shadow": version,
                        "served": served.tolist(),  # no customer ids in any log
                        "shadow_scores": scores.tolist(),
                    }
                )
            )

    async def explain(
        self, values: np.ndarray, names: tuple[str, ...], version: str | None = None
    ) -> Explanation:
        """Contributions of each row by ``version`` (the policy's default, else the newest)."""
        if version is None and self._policy is not None:
            version = self._policy.default
        runtime = self._runtime(version)
        x = values[:, self._column_index(names, runtime.version.version, runtime.features)]
        return await self._explainers.explain(runtime, x)

    # -- KServe v2 ------------------------------------------------------------------------
    async def infer(self, inputs: Inputs, version: str | None = None) -> tuple[str, Inputs]:
        """Batched like scoring when the request fits a batch, else one direct call."""
        if not self._started:
            await self._ensure_started()
        if version is None and self._policy is not None:
            version = self._policy.default
        runtime = self._runtime(version)
        resolved = runtime.version.version
        if runtime.spec.max_batch_size > 0 and rows_of(inputs) <= runtime.spec.max_batch_size:
            return resolved, await self._batcher.submit(inputs, runtime)  # type: ignore[arg-type]
        return resolved, await offload(
            rows_of(inputs), self.settings.offload_rows, runtime.predict, inputs
        )

    async def metadata(self, version: str | None = None) -> dict[str, Any]:
        runtime = self._runtime(version or (self._policy.default if self._policy else None))
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
        if not self._started:
            await self._ensure_started()
        return self.registry.is_ready(
            self.name, version or (self._policy.default if self._policy else None)
        )

    async def index(self) -> list[dict[str, str]]:
        return [row for row in self.registry.index() if row["name"] == self.name]

    # -- repository control ---------------------------------------------------------------
    async def load(self) -> list[str]:
        self._controllable("load")
        versions = self._load()
        self._unloaded = False
        self._loads = time.time()
        await self._publish({"loaded": True, "loads": self._loads})
        return versions

    async def unload(self) -> None:
        self._controllable("unload")
        self.registry.unload(self.name)
        self._unloaded = True
        await self._publish({"loaded": False})

    def _controllable(self, action: str) -> None:
        if self.settings.control_mode == "none":
            raise Conflict(
                f"model control mode is 'none': repository {action} is refused "
                "(models.control_mode: poll or explicit allows it)",
                field="model_name",
            )

    def _load(self) -> list[str]:
        spec = self.registry.load(
            self.name, exclude=self._excluded, extra=self._policy.versions if self._policy else ()
        )
        self._configure(spec)
        self._columns.clear()
        return self.registry.loaded_versions(self.name)

    async def _publish(self, changes: dict[str, Any]) -> dict[str, Any]:
        """Tell the other replicas (they reconcile on their next poll)."""
        state = await self._desired.update(self.name, changes)
        self._generation, self._epoch = state["generation"], state.get("epoch")
        await self._send_report()
        return state

    async def _ensure_started(self) -> None:
        """First call on this replica: follow the desired state (and the Serve config's
        policy) before serving, so a new replica never answers under an old policy."""
        if self._start_task is None:
            self._start_task = asyncio.get_running_loop().create_task(self._start())
        await asyncio.shield(self._start_task)

    async def _start(self) -> None:
        try:
            await self._seed_config()
            await self.reconcile()
        except Exception:  # the poller retries; serving goes on with what is loaded
            log.exception("first sync of model %s with the desired state failed", self.name)
        finally:
            self._started = True
            if self._poll_enabled and self._poller is None:
                self._poller = asyncio.get_running_loop().create_task(self._poll())

    async def _seed_config(self) -> None:
        config = self.settings.rollout.get(self.name)
        policy = None
        if config is not None:
            default = config.default or self.registry.get(self.name).version.version
            built = TrafficPolicy.build(
                self.name, config.model_copy(update={"default": default}), default
            )
            policy = {**config.model_dump(), **built.to_config()}  # salt and buckets stored with it
        fingerprint = json.dumps(config.model_dump() if config else None, sort_keys=True)
        await self._desired.seed(self.name, policy, fingerprint, time.time())

    async def _poll(self) -> None:
        """Follow the shared desired state and pick up new versions on disk."""
        while True:
            await asyncio.sleep(self.settings.poll_interval_s)
            try:
                await self.reconcile()
            except Exception:  # a bad poll must not kill serving; the next one retries
                log.exception("model repository poll failed for %s", self.name)

    def _report(self) -> dict[str, Any]:
        return {
            **self._applied,
            "versions": self.registry.loaded_versions(self.name),
            "failures": self.registry.failures(self.name),
            "policy": self._policy.to_config() if self._policy else None,
            "shadow": self._shadow.to_dict() if self._shadow else None,
        }

    async def _send_report(self) -> dict[str, Any]:
        return await self._desired.sync(self.name, self.replica, self._report())

    async def reconcile(self) -> None:
        """Apply a change made on another replica (load/unload, policy, excluded versions),
        or new versions found on disk (control mode poll)."""
        state = await self._send_report()
        # never an older state (a poll racing an admin call); any state of a new epoch
        if state["generation"] > self._generation or state.get("epoch") != self._epoch:
            await self._apply(state)
            await self._send_report()  # acknowledge at once: the caller waits for every replica
            return
        if (
            self.settings.control_mode == "poll"
            and state["loaded"]
            and self.name in self.registry.names()
            and await asyncio.to_thread(self._repository_changed)
        ):
            self._load()

    async def _apply(self, state: dict[str, Any]) -> None:
        generation = state["generation"]
        self._generation, self._epoch = generation, state.get("epoch")
        if self._pending is not None:
            self._pending.cancel()
            self._pending = None
        try:
            if not state["loaded"]:
                if self.name in self.registry.names():
                    self.registry.unload(self.name)
                self._unloaded = True
                self._applied = {"generation": generation, "ok": True, "cause": None}
                return
            config = state.get("policy")
            policy = (
                None
                if config is None
                else TrafficPolicy.build(
                    self.name, TrafficPolicyConfig.model_validate(config), config["default"]
                )
            )
            excluded = tuple(state.get("excluded") or ())
            loaded = set(self.registry.loaded_versions(self.name))
            needed = set(policy.versions if policy else ())
            if (
                self._unloaded
                or excluded != self._excluded
                or not needed <= loaded
                or set(excluded) & loaded
                or state.get("loads") != self._loads
            ):
                self._excluded, self._loads = excluded, state.get("loads")
                spec = self.registry.load(
                    self.name, exclude=excluded, extra=policy.versions if policy else ()
                )
                self._configure(spec)
                self._columns.clear()
            self._unloaded = False
            if policy is not None:
                self.check_versions(policy.versions, self._names)
        except (
            Exception
        ) as exc:  # this replica cannot serve the change: keep what it serves, say why
            self._applied = {"generation": generation, "ok": False, "cause": str(exc)}
            log.error("model %s: cannot apply generation %d: %s", self.name, generation, exc)
            return
        self._applied = {"generation": generation, "ok": True, "cause": None}
        delay = float(state.get("activate_at") or 0.0) - time.time()
        if delay <= 0:
            self._switch(policy)
        else:  # every replica switches at the same moment: no customer flips between replicas
            self._pending = asyncio.get_running_loop().call_later(delay, self._switch, policy)

    def _switch(self, policy: TrafficPolicy | None) -> None:
        self._pending = None
        previous, self._policy = self._policy, policy
        if policy is None or policy.shadow is None:
            self._shadow = None
        elif (
            previous is None
            or previous.shadow != policy.shadow
            or previous.default != policy.default
        ):
            self._shadow = ShadowStats()
        log.info(
            "model %s: traffic policy %s",
            self.name,
            policy.to_config() if policy else "none (newest)",
        )

    def _repository_changed(self) -> bool:
        """Reads config.pbtxt and lists version folders: disk I/O, run in a thread."""
        on_disk = read_model(self.settings.repo_path, self.name).policy_versions
        return on_disk != self.registry.spec(self.name).policy_versions
