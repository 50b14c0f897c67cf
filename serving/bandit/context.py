"""The bandit's inputs: the context matrix (the configured features and scores, one column
each) and the checks on a decision call's arrays."""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np

from serving.errors import InvalidRequest

SCORE_COLUMNS = {"churn_probability": "churn", "engagement_probability": "engagement"}


class ContextBuilder:
    """Builds the (N, d) context in ``context_features`` order from a feature matrix and
    the two model scores, copying one column per context feature, never the matrix."""

    def __init__(self, context_names: Sequence[str]) -> None:
        self.context_names = tuple(context_names)

    def build(
        self,
        features: np.ndarray,
        feature_names: Sequence[str],
        churn: np.ndarray,
        engagement: np.ndarray,
    ) -> np.ndarray:
        """(N, d) float32 context, NaN as 0."""
        sources = self._sources(tuple(feature_names))
        scores = {"churn": churn, "engagement": engagement}
        out = np.empty((len(churn), len(self.context_names)), dtype=np.float32)
        for j, src in enumerate(sources):  # d columns (2 by default), not rows
            out[:, j] = features[:, src] if isinstance(src, int) else scores[src]
        if not np.isfinite(out).all():  # the common case skips nan_to_num's fixed cost
            np.nan_to_num(out, copy=False, nan=0.0)
        return out

    @functools.lru_cache(maxsize=8)  # noqa: B019 (one builder per router, a handful of layouts)
    def _sources(self, feature_names: tuple[str, ...]) -> tuple[int | str, ...]:
        """Per context column, the feature's column index or the score it is ("churn"...)."""
        self.check_feature_names(feature_names)
        index = {n: i for i, n in enumerate(feature_names)}
        return tuple(index[c] if c in index else SCORE_COLUMNS[c] for c in self.context_names)

    def check_feature_names(self, feature_names: Sequence[str]) -> None:
        """Fail fast (at replica start) when ``context_features`` names a feature not served:
        a configuration error, not the caller's, so a ValueError rather than a 4xx."""
        missing = [
            c for c in self.context_names if c not in feature_names and c not in SCORE_COLUMNS
        ]
        if missing:
            raise ValueError(
                f"bandit.context_features {missing} are not among the features read "
                f"({list(feature_names)}) nor the scores {list(SCORE_COLUMNS)}"
            )


def validate_batch(
    customer_ids: np.ndarray, context: np.ndarray, eligible: np.ndarray, width: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Owned copies of a decision call's ids, (N, ``width``) context and eligible mask: the
    record is written later, by another thread. A wrong shape is a 422 naming its field."""
    ids = np.array(customer_ids, dtype=np.int64).reshape(-1)
    x = np.array(context, dtype=np.float32)
    ok = np.asarray(eligible, dtype=bool).reshape(-1)
    if x.ndim != 2 or x.shape != (len(ids), width):
        raise InvalidRequest(
            f"context must be (N={len(ids)}, d={width}), got {x.shape}", field="context"
        )
    if ok.shape != ids.shape:
        raise InvalidRequest(f"eligible must be ({len(ids)},), got {ok.shape}", field="eligible")
    return ids, x, ok


def opted_out_mask(opted_out: np.ndarray | None, n: int) -> np.ndarray | None:
    """The opted-out mask, None when no row is (the common case costs one ``any``)."""
    if opted_out is None:
        return None
    out = np.asarray(opted_out, dtype=bool).reshape(-1)
    if out.shape != (n,):
        raise InvalidRequest(f"opted_out must be ({n},), got {out.shape}", field="opted_out")
    return out if out.any() else None
