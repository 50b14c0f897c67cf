"""Async services: the units the topology places, in-process or as deployments.

Each is a plain class with async methods. In the fused topology the ingress replica
holds them directly (no hop); in the split topology each is wrapped by
``serve.deployment`` and reached through a DeploymentHandle. Callers use the same
methods either way (see ``serving.topology``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import numpy as np
from ray import serve

from feature_store.batch import FeatureBatch
from serving import metrics
from serving.control import control_actor
from serving.errors import InvalidRequest
from serving.registry import ModelRegistry
from serving.repository import TensorSpec, read_model
from serving.settings import BanditSettings, FeatureSettings, LLMSettings, ModelSettings


log = logging.getLogger("reengage")


# Below this many rows the work is shorter than a thread handoff (~0.3-0.5 ms measured
# here), so it runs inline on the event loop; above it, in a thread (ONNX Runtime, LMDB,
# Redis and sqlite release the GIL), so the loop keeps parsing other requests meanwhile.
OFFLOAD_ROWS = 256


async def offload(rows: int, fn: Any, *args: Any, **kwargs: Any) -> Any:
    if rows < OFFLOAD_ROWS:
        return fn(*args, **kwargs)
    return await asyncio.to_thread(fn, *args, **kwargs)


def _rows(items: list[dict[str, np.ndarray]]) -> int:
    """Batch size in rows (customers), not in requests."""
    return sum(len(next(iter(item.values()))) for item in items)


class ModelServer:
    """Every servable version of one model, with dynamic batching across requests.

    Concurrent requests are merged into one ONNX Runtime call per version (batch size
    counted in rows, capped by ``max_batch_size`` from config.pbtxt).
    """

    def __init__(self, name: str, settings: ModelSettings) -> None:
        self.name = name
        self.settings = settings
        self.registry = ModelRegistry(
            settings.repo_path, lambda spec, ver: _onnx(spec, ver, settings.intra_op_threads)
        )
        # serve.batch needs a replica context; outside Serve (tests, plain uvicorn) each
        # call runs on its own.
        self._batching = _in_replica()
        self._run_batch: Any = None
        self._configure(self.registry.load(name))
        self._columns: dict[tuple[tuple[str, ...], str], np.ndarray] = {}
        self._control = control_actor() if self._batching else None
        self._generation = 0
        self._poller: asyncio.Task[None] | None = None

    def _configure(self, spec: Any) -> None:
        if not self._batching:
            return
        configured = self.settings.batch_wait_timeout_s
        wait = spec.max_queue_delay_s if configured is None else configured
        size = max(spec.max_batch_size, 1)
        if getattr(self, "_run_batch", None) is None:
            # One batch queue per instance: @serve.batch on a method keeps one queue per
            # *function*, which would merge two models' rows when both live in one replica.
            self._run_batch = serve.batch(self._run_group, max_batch_size=size, batch_wait_timeout_s=wait,
                                          batch_size_fn=_rows)
        else:
            self._run_batch.set_max_batch_size(size)
            self._run_batch.set_batch_wait_timeout_s(wait)

    # -- scoring path -------------------------------------------------------------------
    async def score(self, values: np.ndarray, names: tuple[str, ...], version: str | None = None) -> tuple[str, np.ndarray]:
        """P(label) for each row of ``values`` (columns named ``names``); returns (version, (N,) float32)."""
        self._ensure_poller()
        runtime = self.registry.get(self.name, version)
        x = values[:, self._column_index(names, runtime.version.version, runtime.features)]
        outputs = await self._submit({runtime.inputs[0].name: x}, runtime.version.version)
        return runtime.version.version, outputs[runtime.outputs[0].name].reshape(-1)

    async def _submit(self, inputs: dict[str, np.ndarray], version: str) -> dict[str, np.ndarray]:
        if self._batching:
            return await self._run_batch(inputs, version)
        return (await self._run_group([inputs], [version]))[0]

    def _column_index(self, names: tuple[str, ...], version: str, features: tuple[str, ...]) -> np.ndarray:
        key = (names, version)
        index = self._columns.get(key)
        if index is None:
            pos = {n: i for i, n in enumerate(names)}
            missing = [f for f in features if f not in pos]
            if missing:
                raise InvalidRequest(f"model {self.name} v{version} needs features not read: {missing}")
            index = self._columns[key] = np.array([pos[f] for f in features], dtype=np.intp)
        return index

    # -- KServe v2 ------------------------------------------------------------------------
    async def infer(self, inputs: dict[str, np.ndarray], version: str | None = None) -> tuple[str, dict[str, np.ndarray]]:
        self._ensure_poller()
        runtime = self.registry.get(self.name, version)
        if runtime.spec.max_batch_size > 0 and _rows([inputs]) <= runtime.spec.max_batch_size:
            return runtime.version.version, await self._submit(inputs, runtime.version.version)
        return runtime.version.version, runtime.predict(inputs)

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
        if self._control is not None:
            self._generation = await self._control.set.remote(self.name, loaded)
        self._ensure_poller()

    def _ensure_poller(self) -> None:
        if self._poller is None and self._batching and self.settings.poll_interval_s > 0:
            self._poller = asyncio.get_running_loop().create_task(self._poll())

    async def _poll(self) -> None:
        """Follow the shared desired state and pick up new versions on disk."""
        while True:
            await asyncio.sleep(self.settings.poll_interval_s)
            try:
                await self._reconcile()
            except Exception:  # a bad poll must not kill serving; the next one retries
                log.exception("model repository poll failed for %s", self.name)

    async def _reconcile(self) -> None:
        generation, loaded = (await self._control.get.remote(self.name)) if self._control else (self._generation, True)
        if generation != self._generation:
            self._generation = generation
            if not loaded:
                self.registry.unload(self.name)
                return
            self._load()
            return
        if loaded and self.name in self.registry.names() and self._repository_changed():
            self._load()

    def _repository_changed(self) -> bool:
        on_disk = read_model(self.settings.repo_path, self.name).policy_versions
        return on_disk != self.registry.spec(self.name).policy_versions

    async def _run_group(self, inputs: list[dict[str, np.ndarray]], versions: list[str]) -> list[dict[str, np.ndarray]]:
        """One ONNX Runtime call per version over the concatenated rows, split back."""
        out: list[dict[str, np.ndarray]] = [{}] * len(inputs)
        for version in dict.fromkeys(versions):  # a handful of versions at most
            members = [i for i, v in enumerate(versions) if v == version]
            merged = {k: np.concatenate([inputs[i][k] for i in members]) for k in inputs[members[0]]}
            runtime = self.registry.get(self.name, version)
            start = time.perf_counter()
            rows = _rows([merged])
            result = await offload(rows, runtime.predict, merged)
            metrics.model_call(self.name, version, rows, 1e3 * (time.perf_counter() - start))
            bounds = np.cumsum([_rows([inputs[i]]) for i in members])[:-1]
            parts = {k: np.split(v, bounds) for k, v in result.items()}
            for j, i in enumerate(members):
                out[i] = {k: p[j] for k, p in parts.items()}
        return out


def _in_replica() -> bool:
    try:
        serve.get_replica_context()
    except Exception:
        return False
    return True


def _onnx(spec: Any, version: Any, threads: int) -> Any:
    from serving.runtime.onnx import OnnxRuntime

    return OnnxRuntime(spec, version, intra_op_threads=threads)


class FeatureService:
    """Online feature lookup for the union of the models' feature services."""

    def __init__(self, settings: FeatureSettings, feature_services: list[str]) -> None:
        from feature_store.reader import FeastReader, PackedReader
        from feature_store.repo import load_store

        self.settings = settings
        store = load_store(settings)
        refs = feature_refs(store, feature_services)
        reader_cls = PackedReader if settings.reader == "packed" else FeastReader
        self.reader = reader_cls.from_store(
            store, refs, on_missing_view=settings.on_missing_view, timeout_s=settings.timeout_s
        )
        self.store = store

    async def lookup(self, entity_ids: np.ndarray) -> FeatureBatch:
        start = time.perf_counter()
        batch = await offload(len(entity_ids), self.reader.read, entity_ids)
        metrics.feature_read(batch, 1e3 * (time.perf_counter() - start))
        return batch

    async def contact(self, entity_id: int, service: str = "email_writer") -> dict[str, Any]:
        """String facts (name, email, plan...) of one customer for the email writer,
        through Feast's own get_online_features (one entity: the packed path is moot)."""
        def read() -> dict[str, Any]:
            online = self.store.get_online_features(
                features=self.store.get_feature_service(service), entity_rows=[{"customer_id": int(entity_id)}]
            ).to_dict()
            return {k: v[0] for k, v in online.items() if k != "customer_id"}

        return await asyncio.to_thread(read)


def feature_refs(store: Any, services: list[str]) -> list[str]:
    """``view:feature`` refs of the union of feature services, in a stable order."""
    refs: dict[str, None] = {}
    for name in services:
        service = store.get_feature_service(name)
        for projection in service.feature_view_projections:
            for feature in projection.features:
                refs[f"{projection.name_to_use()}:{feature.name}"] = None
    return list(refs)



class BanditService:
    """The bandit router behind async methods: decisions for a scored batch, rewards.

    State and the decision log live in the router's backend (sqlite file or Redis), so
    every replica holding one of these learns from every other's rewards.
    """

    def __init__(self, settings: BanditSettings) -> None:
        from serving.bandit.router import BanditRouter

        self.router = BanditRouter(settings)
        self._checked: tuple[str, ...] | None = None

    async def decide(self, customer_ids: np.ndarray, batch: FeatureBatch, churn: np.ndarray,
                     engagement: np.ndarray, found: np.ndarray, model_versions: dict[str, str]) -> Any:
        if self._checked != batch.names:  # a misconfigured context fails loudly, once
            self.router.check_feature_names(batch.names)
            self._checked = batch.names
        values = np.nan_to_num(batch.values, nan=0.0)
        context = self.router.build_context(values, batch.names, np.nan_to_num(churn), np.nan_to_num(engagement))
        decisions = await offload(
            len(customer_ids), self.router.decide, customer_ids, context, eligible=found, model_versions=model_versions,
            feature_digest=row_digest(batch.values), feature_ts=batch.event_ts,
        )
        metrics.decisions(decisions.action, decisions.reason)
        return decisions

    async def feedback(self, decision_id: str, reward: float) -> dict[str, Any]:
        result = await offload(1, self.router.feedback, decision_id, reward)
        metrics.reward(result.get("action"))
        return result


def row_digest(values: np.ndarray) -> np.ndarray:
    """A 64-bit digest per row of a float32 matrix (replay check), vectorized: the rows'
    bit patterns folded by a fixed odd multiplier per column."""
    bits = np.ascontiguousarray(values, dtype=np.float32).view(np.uint32).astype(np.uint64)
    weights = (np.arange(1, bits.shape[1] + 1, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)) | np.uint64(1)
    with np.errstate(over="ignore"):
        return (bits * weights).sum(axis=1, dtype=np.uint64)


class WriterService:
    """The email writer (LLM) as a service: its own deployment, scaled apart from scoring.

    The engine starts once per replica (vLLM on a GPU, transformers on the CPU); the
    transformers engine groups concurrent requests into one generate call.
    """

    def __init__(self, settings: LLMSettings) -> None:
        from serving.llm.service import EmailWriter

        self.writer = EmailWriter(settings)
        self._started: asyncio.Task[None] | None = None

    async def _ready(self) -> None:
        if self._started is None:
            self._started = asyncio.get_running_loop().create_task(self.writer.start())
        await asyncio.shield(self._started)

    async def write(self, facts: dict[str, Any], action: str, scores: dict[str, Any],
                    max_tokens: int | None = None, temperature: float | None = None) -> dict[str, Any]:
        await self._ready()
        result = await self.writer.write(facts, action, scores, max_tokens=max_tokens, temperature=temperature)
        if result.written:
            metrics.email(result.backend, result.fallback)
        return result.to_dict()

    async def complete(self, request: Any) -> Any:
        await self._ready()
        return await self.writer.complete(request)

    async def complete_stream(self, request: Any) -> Any:
        """Server-sent event frames, ending with ``[DONE]``."""
        from serving.protocol.openai import SSE_DONE, sse_event

        await self._ready()
        async for chunk in self.writer.complete_stream(request):
            yield sse_event(chunk)
        yield SSE_DONE

    async def models(self) -> Any:
        return self.writer.models()

    async def ready(self) -> bool:
        await self._ready()
        return True

    async def check_health(self) -> None:
        """Serve's health check: a replica whose engine died is restarted."""
        if self._started is not None and self._started.done():
            await self.writer.check_health()
