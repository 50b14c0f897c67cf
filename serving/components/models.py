"""The model service: every servable version of one model, batched by rows.

Plain Python: batching is injected (``components.batching``), and so is the shared
desired state that carries repository load/unload calls to the other replicas
(``DesiredState``; a Ray actor in ``serving.deployments.control``, a dict in-process).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np

from serving import metrics
from serving.components.batching import AsyncBatcher, Batcher, Inputs, RunGroup, rows_of
from serving.components.offload import offload
from serving.errors import InvalidRequest
from serving.registry import ModelRegistry
from serving.repository import ModelSpec, TensorSpec, read_model
from serving.runtime import runtime_for
from serving.settings import ModelSettings

log = logging.getLogger("reengage")

BatcherFactory = Callable[[RunGroup], Batcher]


class DesiredState(Protocol):
    """Loaded-or-not per model with a generation that bumps on every change."""

    async def set(self, model: str, loaded: bool) -> int: ...

    async def get(self, model: str) -> tuple[int, bool]: ...


class LocalDesiredState:
    """One process, one state: what a single uvicorn worker or a unit test needs."""

    def __init__(self) -> None:
        self._state: dict[str, tuple[int, bool]] = {}

    async def set(self, model: str, loaded: bool) -> int:
        generation = self._state.get(model, (0, True))[0] + 1
        self._state[model] = (generation, loaded)
        return generation

    async def get(self, model: str) -> tuple[int, bool]:
        return self._state.get(model, (0, True))


class ModelService:
    """Scores rows with one model (any loaded version), merging concurrent calls.

    Concurrent calls are merged by the batcher into one runtime call per version (batch
    size in rows, capped by ``max_batch_size`` from config.pbtxt) and split back.
    """

    def __init__(self, name: str, settings: ModelSettings, *, batcher: BatcherFactory = AsyncBatcher,
                 desired: DesiredState | None = None, poll: bool = False) -> None:
        self.name = name
        self.settings = settings
        self.registry = ModelRegistry(settings.repo_path,
                                      lambda spec, ver: runtime_for(spec, ver, settings.intra_op_threads))
        self._batcher = batcher(self.run_group)
        self._desired = desired or LocalDesiredState()
        self._poll_enabled = poll and settings.poll_interval_s > 0
        self._columns: dict[tuple[tuple[str, ...], str], np.ndarray] = {}
        self._generation = 0
        self._poller: asyncio.Task[None] | None = None
        self._configure(self.registry.load(name))

    def _configure(self, spec: ModelSpec) -> None:
        configured = self.settings.batch_wait_timeout_s
        wait = spec.max_queue_delay_s if configured is None else configured
        self._batcher.configure(max(spec.max_batch_size, 1), wait)

    # -- scoring path -------------------------------------------------------------------
    async def score(self, values: np.ndarray, names: tuple[str, ...],
                    version: str | None = None) -> tuple[str, np.ndarray]:
        """P(label) per row of ``values`` (columns named ``names``): (version, (N,) float32)."""
        self._ensure_poller()
        runtime = self.registry.get(self.name, version)
        resolved = runtime.version.version
        x = values[:, self._column_index(names, resolved, runtime.features)]
        outputs = await self._batcher.submit({runtime.inputs[0].name: x}, resolved)
        return resolved, outputs[runtime.outputs[0].name].reshape(-1)

    def _column_index(self, names: tuple[str, ...], version: str, features: tuple[str, ...]) -> np.ndarray:
        """The model's columns among the features read, computed once per layout."""
        key = (names, version)
        index = self._columns.get(key)
        if index is None:
            pos = {n: i for i, n in enumerate(names)}
            missing = [f for f in features if f not in pos]
            if missing:
                raise InvalidRequest(f"model {self.name} v{version} needs features not read: {missing}")
            index = self._columns[key] = np.array([pos[f] for f in features], dtype=np.intp)
        return index

    async def run_group(self, inputs: list[Inputs], versions: list[str]) -> list[Inputs]:
        """One runtime call per version over the concatenated rows, split back per call."""
        out: list[Inputs] = [{}] * len(inputs)
        for version in dict.fromkeys(versions):  # a handful of versions at most
            members = [i for i, v in enumerate(versions) if v == version]
            parts = [inputs[i] for i in members]
            merged = parts[0] if len(parts) == 1 else {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
            rows = rows_of(merged)
            runtime = self.registry.get(self.name, version)
            start = time.perf_counter()
            result = await offload(rows, self.settings.offload_rows, runtime.predict, merged)
            metrics.model_call(self.name, version, rows, 1e3 * (time.perf_counter() - start))
            if len(parts) == 1:
                out[members[0]] = result
                continue
            bounds = np.cumsum([rows_of(p) for p in parts])[:-1]
            split = {k: np.split(v, bounds) for k, v in result.items()}
            for j, i in enumerate(members):
                out[i] = {k: s[j] for k, s in split.items()}
        return out

    # -- KServe v2 ------------------------------------------------------------------------
    async def infer(self, inputs: Inputs, version: str | None = None) -> tuple[str, Inputs]:
        """Batched like scoring when the request fits a batch, else one direct call."""
        self._ensure_poller()
        runtime = self.registry.get(self.name, version)
        resolved = runtime.version.version
        if runtime.spec.max_batch_size > 0 and rows_of(inputs) <= runtime.spec.max_batch_size:
            return resolved, await self._batcher.submit(inputs, resolved)
        return resolved, await offload(rows_of(inputs), self.settings.offload_rows, runtime.predict, inputs)

    async def metadata(self, version: str | None = None) -> dict[str, Any]:
        runtime = self.registry.get(self.name, version)
        spec = runtime.spec
        return {
            "name": self.name,
            "versions": sorted(spec.policy_versions, key=int),
            "platform": spec.platform,
            "inputs": [t.to_dict() for t in spec.inputs],
            "outputs": [t.to_dict() for t in spec.outputs],
            "parameters": {"features": list(runtime.features), "version": runtime.version.version, **spec.parameters},
        }

    async def input_specs(self, version: str | None = None) -> tuple[TensorSpec, ...]:
        return self.registry.get(self.name, version).inputs

    async def ready(self, version: str | None = None) -> bool:
        self._ensure_poller()
        return self.registry.is_ready(self.name, version)

    async def index(self) -> list[dict[str, str]]:
        return [row for row in self.registry.index() if row["name"] == self.name]

    # -- repository control ---------------------------------------------------------------
    async def load(self) -> list[str]:
        versions = self._load()
        await self._publish(loaded=True)
        return versions

    async def unload(self) -> None:
        self.registry.unload(self.name)
        await self._publish(loaded=False)

    def _load(self) -> list[str]:
        spec = self.registry.load(self.name)
        self._configure(spec)
        self._columns.clear()
        return list(spec.policy_versions)

    async def _publish(self, loaded: bool) -> None:
        """Tell the other replicas (they reconcile on their next poll)."""
        self._generation = await self._desired.set(self.name, loaded)
        self._ensure_poller()

    def _ensure_poller(self) -> None:
        if self._poller is None and self._poll_enabled:
            self._poller = asyncio.get_running_loop().create_task(self._poll())

    async def _poll(self) -> None:
        """Follow the shared desired state and pick up new versions on disk."""
        while True:
            await asyncio.sleep(self.settings.poll_interval_s)
            try:
                await self.reconcile()
            except Exception:  # a bad poll must not kill serving; the next one retries
                log.exception("model repository poll failed for %s", self.name)

    async def reconcile(self) -> None:
        """Apply a load/unload made on another replica, or new versions found on disk."""
        generation, loaded = await self._desired.get(self.name)
        if generation != self._generation:
            self._generation = generation
            if not loaded:
                self.registry.unload(self.name)
            else:
                self._load()
            return
        if loaded and self.name in self.registry.names() and await asyncio.to_thread(self._repository_changed):
            self._load()

    def _repository_changed(self) -> bool:
        """Reads config.pbtxt and lists version folders: disk I/O, run in a thread."""
        on_disk = read_model(self.settings.repo_path, self.name).policy_versions
        return on_disk != self.registry.spec(self.name).policy_versions
