"""Where a model's features sit among the features read, per feature layout.

The feature service reads every model's features in one layout; each version takes its
own columns of it. The index is computed once per (layout, version) and dropped when
versions reload (a version's feature list may have changed).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from serving.errors import InvalidRequest


class FeatureColumns:
    """Per (feature layout, version): the model's columns among the features read,
    computed once; and the layout last scored (what a new version is checked against)."""

    def __init__(self, model: str) -> None:
        self.model = model
        self.names: tuple[str, ...] | None = None
        self._index: dict[tuple[tuple[str, ...], str], np.ndarray] = {}

    def index(self, names: tuple[str, ...], version: str, features: Sequence[str]) -> np.ndarray:
        key = (names, version)
        index = self._index.get(key)
        if index is None:
            self.names = names
            pos = {n: i for i, n in enumerate(names)}
            missing = [f for f in features if f not in pos]
            if missing:
                raise InvalidRequest(
                    f"model {self.model} v{version} needs features not read: {missing}"
                )
            index = self._index[key] = np.array([pos[f] for f in features], dtype=np.intp)
        return index

    def clear(self) -> None:
        """Versions were (re)loaded: a version's feature list may have changed."""
        self._index.clear()
