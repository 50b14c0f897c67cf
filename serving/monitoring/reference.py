"""A version's drift reference, compiled for binning a batch with a few array operations.

``reference.json`` (written by the build: ``model_repo/training/reference.py``) gives each
input feature and the score ``lo``, ``hi``, inner ``cuts`` and the training counts in
``[missing, below lo, bin 1 .. bin B, above hi]``. ``Binner`` lays every feature's slots
end to end in one flat vector, so binning N rows of F features is one broadcast
comparison against an (F, K) edge matrix, one ``np.bincount`` and no Python loop per row
or per feature.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

FILE = "reference.json"
SMALL_BATCH = 8  # rows up to which one broadcast comparison is the cheaper binning
PSI_EPSILON = 1e-4  # an empty bin's share, as Evidently and most PSI implementations floor it


def psi(expected: np.ndarray, actual: np.ndarray, eps: float = PSI_EPSILON) -> float | None:
    """Population stability index of ``actual`` counts against ``expected`` counts (same bins);
    None when either side has no rows."""
    e_n, a_n = float(np.sum(expected)), float(np.sum(actual))
    if e_n <= 0 or a_n <= 0:
        return None
    p = np.maximum(np.asarray(expected, np.float64) / e_n, eps)
    q = np.maximum(np.asarray(actual, np.float64) / a_n, eps)
    return float(np.sum((q - p) * np.log(q / p)))


@dataclass(frozen=True, eq=False)
class Binner:
    """The compiled reference of one model version."""

    model: str
    fingerprint: str
    rows: int
    features: tuple[str, ...]
    edges: np.ndarray  # (F, K) float64: lo then the cuts, NaN-padded (never >=)
    hi: np.ndarray  # (F,)
    offsets: np.ndarray  # (F,) int64: each feature's first slot in the flat vector
    sizes: np.ndarray  # (F,) slots per feature (B + 3)
    reference: np.ndarray  # (total,) training counts, flat
    score_edges: np.ndarray  # (K_s,)
    score_hi: float
    score_reference: np.ndarray

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> "Binner":
        cols = doc["features"]
        k = max(len(c["cuts"]) + 1 for c in cols) if cols else 1
        edges = np.full((len(cols), k), np.nan)
        for j, c in enumerate(cols):
            edges[j, : len(c["cuts"]) + 1] = [c["lo"], *c["cuts"]]
        sizes = np.array([len(c["counts"]) for c in cols], dtype=np.int64)
        score = doc["score"]
        return cls(
            model=doc["model"],
            fingerprint=doc["fingerprint"],
            rows=int(doc["rows"]),
            features=tuple(c["feature"] for c in cols),
            edges=edges,
            hi=np.array([c["hi"] for c in cols], dtype=np.float64),
            offsets=np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64),
            sizes=sizes,
            reference=np.concatenate([np.asarray(c["counts"], np.int64) for c in cols])
            if cols
            else np.zeros(0, np.int64),
            score_edges=np.asarray([score["lo"], *score["cuts"]], np.float64),
            score_hi=float(score["hi"]),
            score_reference=np.asarray(score["counts"], np.int64),
        )

    @property
    def total(self) -> int:
        return int(self.sizes.sum())

    def feature_counts(self, x: np.ndarray) -> np.ndarray:
        """Flat slot counts of ``x`` (N, F), columns in ``features`` order.

        A few rows: one broadcast comparison (N, F, K). More: feature-major (F, N), one
        comparison per edge column, so every numpy loop runs over N contiguous values
        rather than over K or F (small inner loops are what numpy does slowly).
        """
        if len(x) <= SMALL_BATCH:
            idx = (x[:, :, None] >= self.edges[None, :, :]).sum(axis=2) + (x > self.hi)
            idx = np.where(np.isnan(x), -1, idx) + 1 + self.offsets
            return np.bincount(idx.ravel(), minlength=self.total)
        return self.counts_of(self.slots(x))

    def slots(self, x: np.ndarray) -> np.ndarray:
        """(F, N) each value's slot within its feature (0 missing, 1 below, ..., B + 2 above)."""
        xt = np.ascontiguousarray(x.T)
        edges, hi = self._f32 if xt.dtype == np.float32 else (self._edge_cols, self._hi_col)
        idx = (xt > hi).astype(np.int16)
        for edge in edges:
            idx += xt >= edge
        return np.where(np.isnan(xt), 0, idx + 1)

    def counts_of(self, slots: np.ndarray) -> np.ndarray:
        """Flat slot counts from ``slots`` (F, N)."""
        return np.bincount((slots + self._offset_col).ravel(), minlength=self.total)

    @cached_property
    def keys(self) -> tuple[tuple[Any, ...], ...]:
        """Each feature's name and bins: two versions or models whose features share a key
        bin those values identically (``Monitor`` bins them once)."""
        return tuple(
            (name, tuple(row[~np.isnan(row)].tolist()), float(hi))
            for name, row, hi in zip(self.features, self.edges, self.hi)
        )

    @cached_property
    def _edge_cols(self) -> list[np.ndarray]:
        return [np.ascontiguousarray(self.edges[:, k : k + 1]) for k in range(self.edges.shape[1])]

    @cached_property
    def _f32(self) -> tuple[list[np.ndarray], np.ndarray]:
        """Edges and ``hi`` as float32 that compare a float32 value exactly as the float64 ones
        do (``x >= e`` iff ``x >= e`` rounded up; ``x > hi`` iff ``x > hi`` rounded down), so
        the comparisons need no conversion of the batch to float64."""
        up = self.edges.astype(np.float32)
        low = up.astype(np.float64) < self.edges
        up[low] = np.nextafter(up[low], np.float32(np.inf))
        hi = self.hi.astype(np.float32)
        high = hi.astype(np.float64) > self.hi
        hi[high] = np.nextafter(hi[high], np.float32(-np.inf))
        return [np.ascontiguousarray(up[:, k : k + 1]) for k in range(up.shape[1])], hi[:, None]

    @cached_property
    def _hi_col(self) -> np.ndarray:
        return self.hi[:, None]

    @cached_property
    def _offset_col(self) -> np.ndarray:
        return self.offsets[:, None]

    def score_counts(self, scores: np.ndarray) -> np.ndarray:
        s = np.asarray(scores, np.float64)
        idx = (s[:, None] >= self.score_edges[None, :]).sum(axis=1) + (s > self.score_hi)
        return np.bincount(np.where(np.isnan(s), -1, idx) + 1, minlength=len(self.score_reference))

    def split(self, flat: np.ndarray) -> list[np.ndarray]:
        """The flat vector back into one count vector per feature."""
        return np.split(np.asarray(flat), self.offsets[1:])


class References:
    """Each version's ``Binner``, read from the repository once (None: no reference)."""

    def __init__(self, repo_path: Path) -> None:
        self.repo_path = Path(repo_path)
        self._lock = threading.Lock()
        self._cache: dict[tuple[str, str], Binner | None] = {}

    def get(self, model: str, version: str) -> Binner | None:
        key = (model, version)
        with self._lock:
            if key in self._cache:
                return self._cache[key]
        binner = self._load(model, version)
        with self._lock:
            self._cache[key] = binner
        return binner

    def _load(self, model: str, version: str) -> Binner | None:
        path = self.repo_path / model / version / FILE
        try:
            return Binner.from_doc(json.loads(path.read_text()))
        except (OSError, ValueError, KeyError, TypeError):
            return None
