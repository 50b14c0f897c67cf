"""Explanations of a model's scores: the explainer per version, and the answer's block.

Kept apart from the scoring path: nothing here runs unless a request asks for
``explain``, and explainers load on first use per version (a replica that is never
asked to explain never reads a booster or opens a second ONNX session).

The block (docs/api.md, "POST /v1/explain") is columnar like ``/v1/score``::

    {"version": "3", "output": "log_odds", "method": "tree_shap",
     "base_value": [float | null, ...],
     "contributions": [[{"feature", "value", "contribution"}, ...] | null, ...]}

sorted by |contribution|, top-k per row, nulls for customers not found. The top-k is
chosen for all rows at once (one argsort of the |contribution| matrix, gathers with
``take_along_axis``); only the final JSON objects are built in Python, in one pass.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypedDict

import numpy as np

from serving.runtime.base import ModelRuntime
from serving.runtime.explain import Attribution, Explainer, explainer_for

# TreeSHAP costs far more a row than scoring (docs/benchmarks.md, "Explanations"): beyond
# this many rows it runs in a thread so the event loop keeps serving /v1/score; the
# DeepLIFT graph is as cheap as scoring.
INLINE_ROWS = {"tree_shap": 8}
INLINE_ROWS_DEFAULT = 2048


@dataclass(frozen=True)
class Explanation:
    """A model's explanation of N rows (customers found), float64, rows in input order."""

    model: str
    version: str
    method: str
    features: tuple[str, ...]
    values: np.ndarray  # (N, F) float32: the model's inputs, in ``features`` order
    contributions: np.ndarray  # (N, F)
    base_value: np.ndarray  # (N,)
    log_odds: np.ndarray  # (N,)


class Explainers:
    """One explainer per served version, loaded on first use (thread-safe, cached)."""

    def __init__(self, model: str, threads: int = 1) -> None:
        self.model = model
        self.threads = threads
        self._loaded: dict[tuple[str, str], Explainer] = {}
        self._lock = threading.Lock()

    def get(self, runtime: ModelRuntime) -> Explainer:
        version = runtime.version
        key = (version.version, str(version.path))  # version folders are immutable
        explainer = self._loaded.get(key)
        if explainer is None:
            with self._lock:
                explainer = self._loaded.get(key)
                if explainer is None:
                    explainer = self._loaded[key] = explainer_for(self.model, version, self.threads)
        return explainer

    async def explain(self, runtime: ModelRuntime, x: np.ndarray) -> Explanation:
        """Contributions of rows ``x`` ([N, F], the model's columns) by ``runtime``'s version."""
        explainer = self.get(runtime)
        if len(x) < INLINE_ROWS.get(explainer.method, INLINE_ROWS_DEFAULT):
            got: Attribution = explainer.explain(x)
        else:  # LightGBM and ONNX Runtime release the GIL while they compute
            got = await asyncio.to_thread(explainer.explain, x)
        return Explanation(
            self.model,
            runtime.version.version,
            got.method,
            tuple(runtime.features),
            np.asarray(x, np.float32),
            got.contributions,
            got.base_value,
            got.log_odds,
        )


def top_k(contributions: np.ndarray, k: int) -> np.ndarray:
    """(N, min(k, F)) column indices per row, largest |contribution| first (stable ties)."""
    k = min(max(int(k), 0), contributions.shape[1])
    order = np.argsort(-np.abs(contributions), axis=1, kind="stable")
    return order[:, :k]


Part = tuple[
    Explanation, np.ndarray
]  # an explanation and the answer rows (request positions) it covers


class Contribution(TypedDict):
    """One feature's share of a row's log-odds: a JSON object of the answer, built as a dict
    because the answer holds one per feature per row (``protocol.v1.Contribution``)."""

    feature: str
    value: float | None
    contribution: float


@dataclass(frozen=True)
class ExplanationBlock:
    """One model's explanation of ``n`` customers, columnar, request order: what the
    dataplane hands the routes (``to_dict`` is the wire shape, ``protocol.v1.ExplanationBlock``)."""

    version: str  # comma-separated under a rollout split: each version that scored
    method: str
    base_value: np.ndarray  # (n,) float64, NaN where not found
    contributions: Sequence[list[Contribution] | None]  # top-k per row, None: not found
    output: str = "log_odds"

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "output": self.output,
            "method": self.method,
            "base_value": self.base_value,
            "contributions": self.contributions,
        }


def block(parts: list[Part], n: int, k: int) -> ExplanationBlock:
    """The answer's block for ``n`` customers from one part per version that scored them
    (one without a rollout split); rows no part covers (not found) are null."""
    version = ",".join(dict.fromkeys(e.version for e, _ in parts))
    method = ",".join(dict.fromkeys(e.method for e, _ in parts))
    base = np.full(n, np.nan)
    if len(parts) == 1 and len(parts[0][1]) == n:  # every row found, one version
        expl, rows = parts[0]
        base[rows] = expl.base_value
        return ExplanationBlock(version, method, base, _rows(expl, k))
    contributions: list[list[Contribution] | None] = [None] * n
    for expl, rows in parts:
        base[rows] = expl.base_value
        for row, item in zip(rows.tolist(), _rows(expl, k)):
            contributions[row] = item
    return ExplanationBlock(version, method, base, contributions)


def _rows(expl: Explanation, k: int) -> list[list[Contribution]]:
    """Each row's top-k as {feature, value, contribution}: gathered for all rows at once."""
    order = top_k(expl.contributions, k)
    names = np.asarray(expl.features, dtype=object)[order].tolist()
    contrib = np.take_along_axis(expl.contributions, order, axis=1).tolist()
    # float32 -> shortest decimal that round-trips (0.1, not 0.10000000149011612), vectorised
    values = (
        np.take_along_axis(expl.values, order, axis=1)
        .astype(np.float32)
        .astype(str)
        .astype(np.float64)
    )
    values = np.where(np.isfinite(values), values, np.nan).tolist()
    return [
        [{"feature": f, "value": v, "contribution": c} for f, v, c in zip(fr, vr, cr)]
        for fr, vr, cr in zip(names, values, contrib)
    ]
