"""The shadow version: rows in its share scored again after the answer, and summarised.

A policy's shadow never touches an answer: ``ShadowScorer.spawn`` scores the rows the
default served in a background task (bounded: past ``shadow_max_tasks`` in flight a row
is skipped and counted), and each replica keeps a ``ShadowStats`` of the differences and
latencies, which the rollout status merges over replicas (``ShadowStats.summary``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from serving import metrics
from serving.components.offload import offload
from serving.components.columns import FeatureColumns
from serving.components.traffic_policy import TrafficPolicy
from serving.registry import ModelRegistry
from serving.settings import ModelSettings

log = logging.getLogger("reengage")
shadow_log = logging.getLogger("reengage.shadow")

DIFF_EDGES = np.array([0.001, 0.01, 0.05, 0.1, 0.2, 0.5, 1.0])


@dataclass(frozen=True)
class ShadowSummary:
    """Shadow against default over every replica: score differences and latencies."""

    rows: int
    mean_diff: float | None
    mean_abs_diff: float | None
    p95_abs_diff_at_most: float | None
    max_abs_diff: float | None
    abs_diff_histogram: dict[str, int]
    shadow_latency_ms: float | None
    default_latency_ms: float | None


@dataclass
class ShadowStats:
    """Shadow against default on one replica: |score difference| histogram and latencies."""

    rows: int = 0
    sum_diff: float = 0.0
    sum_abs: float = 0.0
    max_abs: float = 0.0
    abs_hist: list[int] = field(default_factory=lambda: [0] * (len(DIFF_EDGES) + 1))
    shadow_ms: float = 0.0
    shadow_calls: int = 0
    default_ms: float = 0.0
    default_calls: int = 0

    def add(self, served: np.ndarray, shadow: np.ndarray, latency_ms: float) -> None:
        diff = shadow.astype(np.float64) - served.astype(np.float64)
        diff = diff[np.isfinite(diff)]
        a = np.abs(diff)
        self.rows += len(diff)
        self.sum_diff += float(diff.sum())
        self.sum_abs += float(a.sum())
        self.max_abs = max(self.max_abs, float(a.max()) if len(a) else 0.0)
        for i, n in enumerate(
            np.bincount(np.searchsorted(DIFF_EDGES, a), minlength=len(self.abs_hist)).tolist()
        ):
            self.abs_hist[i] += n
        self.shadow_ms += latency_ms
        self.shadow_calls += 1

    def default_call(self, latency_ms: float) -> None:
        self.default_ms += latency_ms
        self.default_calls += 1

    def to_dict(self) -> dict[str, Any]:
        """The replica's report form (JSON: it travels through the desired state)."""
        return dict(self.__dict__)

    @staticmethod
    def summary(parts: Sequence[Mapping[str, Any]]) -> ShadowSummary:
        """Merged over replicas: mean and mean absolute difference, a p95 bound, latencies."""
        total = ShadowStats()
        for p in parts:
            for k, v in p.items():
                if k == "abs_hist":
                    total.abs_hist = [a + b for a, b in zip(total.abs_hist, v)]
                elif k == "max_abs":
                    total.max_abs = max(total.max_abs, v)
                else:
                    setattr(total, k, getattr(total, k) + v)
        n = total.rows
        p95 = None
        if n:
            rank = np.searchsorted(np.cumsum(total.abs_hist), 0.95 * n)
            p95 = float(DIFF_EDGES[rank]) if rank < len(DIFF_EDGES) else float(total.max_abs)
        return ShadowSummary(
            rows=n,
            mean_diff=total.sum_diff / n if n else None,
            mean_abs_diff=total.sum_abs / n if n else None,
            p95_abs_diff_at_most=p95,
            max_abs_diff=total.max_abs if n else None,
            abs_diff_histogram={f"<{e:g}": c for e, c in zip(DIFF_EDGES, total.abs_hist)}
            | {f">={DIFF_EDGES[-1]:g}": total.abs_hist[-1]},
            shadow_latency_ms=total.shadow_ms / total.shadow_calls if total.shadow_calls else None,
            default_latency_ms=(
                total.default_ms / total.default_calls if total.default_calls else None
            ),
        )


class ShadowScorer:
    """Scores the shadow's share of a batch off the critical path, one task per batch.

    ``current`` answers the policy in force and this replica's stats (the replica's
    own): a task that finishes after a policy change records nothing."""

    def __init__(
        self,
        name: str,
        settings: ModelSettings,
        registry: ModelRegistry,
        columns: FeatureColumns,
        current: Callable[[], tuple[TrafficPolicy | None, ShadowStats | None]],
    ) -> None:
        self.name = name
        self.settings = settings
        self.registry = registry
        self.columns = columns
        self.tasks: set[asyncio.Task[None]] = set()
        self._current = current

    def spawn(
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
        if len(self.tasks) >= self.settings.shadow_max_tasks:  # bounded: a slow shadow sheds
            metrics.shadow_skipped(self.name, policy.shadow or "", int(rows.sum()))
            return
        task = asyncio.get_running_loop().create_task(
            self._score(policy, values[rows], names, served[rows])
        )
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _score(
        self, policy: TrafficPolicy, values: np.ndarray, names: tuple[str, ...], served: np.ndarray
    ) -> None:
        await asyncio.sleep(0)  # let the request finish first: the shadow is off the critical path
        version = policy.shadow or ""
        try:
            runtime = self.registry.get(self.name, version)
            x = values[:, self.columns.index(names, version, runtime.features)]
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
        current, stats = self._current()
        if stats is not None and current is policy:
            stats.add(served, scores, latency_ms)
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
