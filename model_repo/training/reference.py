"""The drift reference of a model version: fixed bins per input feature and for the score.

Written by the build beside the version (``reference.json``) from the data the version
was trained on; the server bins what it scores into the same bins and compares
(``serving/monitoring``). Each column gets:

- ``lo``/``hi``: the training range; a served value outside it is *out of range*;
- ``cuts``: inner bin edges. A column with at most ``MAX_CATEGORIES`` distinct values
  gets one bin per value (edges halfway between them); any other gets quantile bins
  (deciles by default, equal cuts merged);
- ``counts``: ``[missing, below lo, bin 1 .. bin B, above hi]`` over the reference rows.

Bin *i* holds ``cuts[i-1] <= x < cuts[i]`` (``lo`` and ``hi`` close the ends), so the
server finds a row's bin with comparisons only. The score's range is [0, 1].
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

FORMAT = 1
FILE = "reference.json"
QUANTILE_BINS = 10
MAX_CATEGORIES = 12


def column_bins(
    x: np.ndarray, *, bins: int = QUANTILE_BINS, lo: float | None = None, hi: float | None = None
) -> dict[str, Any]:
    """Edges for one column (NaN is missing) and its counts in them."""
    x = np.asarray(x, dtype=np.float64)
    ok = x[~np.isnan(x)]
    lo = float(ok.min()) if lo is None and len(ok) else (0.0 if lo is None else lo)
    hi = float(ok.max()) if hi is None and len(ok) else (0.0 if hi is None else hi)
    values = np.unique(ok)
    if len(values) <= MAX_CATEGORIES:
        cuts = (values[:-1] + values[1:]) / 2
        kind = "categorical"
    else:
        cuts = np.unique(np.quantile(ok, np.linspace(0, 1, bins + 1)[1:-1]))
        cuts = cuts[(cuts > lo) & (cuts <= hi)]
        kind = "quantile"
    spec = {"kind": kind, "lo": lo, "hi": hi, "cuts": [float(c) for c in cuts]}
    return {**spec, "counts": counts(x, spec).tolist()}


def counts(x: np.ndarray, spec: dict[str, Any]) -> np.ndarray:
    """``[missing, below, bins..., above]`` of ``x`` in ``spec``'s bins (the server's rule)."""
    x = np.asarray(x, dtype=np.float64)
    nan = np.isnan(x)
    edges = np.asarray([spec["lo"], *spec["cuts"]], dtype=np.float64)
    idx = (x[:, None] >= edges[None, :]).sum(axis=1) + (x > spec["hi"])  # 0 below .. B+1 above
    idx = np.where(nan, -1, idx) + 1
    return np.bincount(idx, minlength=len(edges) + 3)


def build(
    model: str,
    version_fingerprint: str,
    features: tuple[str, ...],
    x: np.ndarray,
    scores: np.ndarray,
) -> dict[str, Any]:
    """The reference document of one version: ``x`` (N, F) the training rows, ``scores`` the
    version's outputs on them."""
    return {
        "format": FORMAT,
        "model": model,
        "fingerprint": version_fingerprint,
        "rows": int(len(x)),
        "features": [{"feature": name, **column_bins(x[:, j])} for j, name in enumerate(features)],
        "score": {"feature": "score", **column_bins(scores, lo=0.0, hi=1.0)},
    }


def to_bytes(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, indent=1).encode()
