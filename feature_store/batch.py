"""The columnar result of one online feature read, shared by every reader.

A read of N entities yields one float32 matrix, never per-row Python objects. Readers
(Feast's ``get_online_features`` adapter, the packed batch reader) all return this.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np


@dataclass(frozen=True)
class FeatureBatch:
    """Features for N entities, columns in ``names`` order.

    values:   (N, F) float32; NaN where a view is missing for that row
    found:    (N,) bool; every view of the request present and fresh
    event_ts: (N, V) float64 epoch seconds per feature view (NaN: missing), views in ``views``
    names:    F feature names (unprefixed: feature names are unique across our views)
    views:    V feature view names
    """

    values: np.ndarray
    found: np.ndarray
    event_ts: np.ndarray
    names: tuple[str, ...]
    views: tuple[str, ...]
    view_found: np.ndarray | None = field(default=None)  # (N, V) bool, None: same as found
    # (N, V) bool: the row exists but is older than the view's TTL (counted, then "not found")
    expired: np.ndarray | None = field(default=None)
    # (N, V) bool: the row was written under another schema than the registry's (never decoded)
    schema_mismatch: np.ndarray | None = field(default=None)

    def __post_init__(self) -> None:
        n = self.values.shape[0]
        if self.values.ndim != 2 or self.values.shape[1] != len(self.names):
            raise ValueError(
                f"values shape {self.values.shape} does not match {len(self.names)} names"
            )
        if self.found.shape != (n,) or self.event_ts.shape != (n, len(self.views)):
            raise ValueError("found / event_ts shapes do not match values")

    def __len__(self) -> int:
        return int(self.values.shape[0])

    def columns(self, names: Sequence[str]) -> np.ndarray:
        """The (N, len(names)) float32 sub-matrix, one fancy-index, no loop over rows."""
        index = {n: i for i, n in enumerate(self.names)}
        missing = [n for n in names if n not in index]
        if missing:
            raise KeyError(f"features not in this batch: {missing}")
        return np.ascontiguousarray(self.values[:, [index[n] for n in names]], dtype=np.float32)

    def age_seconds(self, now: float) -> np.ndarray:
        """(N,) age of the oldest view per row in seconds; NaN where nothing was found."""
        oldest = self.event_ts.min(axis=1)  # NaN wherever a view is missing
        if self.found.all() and not np.isnan(oldest).any():
            return now - oldest
        with np.errstate(all="ignore"):
            oldest = np.nanmin(np.where(np.isnan(self.event_ts), np.inf, self.event_ts), axis=1)
        age = now - oldest
        age[~np.isfinite(oldest)] = np.nan
        return age
