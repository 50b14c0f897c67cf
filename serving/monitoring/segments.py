"""The customer segments a fairness review asks about: plan tier, region and age band.

One definition for the server (``/v1/monitor``: contact rates per segment) and the
build (the model card's per-segment holdout metrics). A segment is a (feature, value)
pair; ``codes`` maps a feature matrix to one segment index per row and feature with
numpy comparisons only, so a batch of any size costs the same few array operations.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

PLAN_TIERS = (
    "basic",
    "plus",
    "premium",
)  # plan_tier 0, 1, 2 (feature_store.datagen.schema names them too)
REGIONS = (
    "north_america",
    "europe",
    "latin_america",
    "asia_pacific",
    "middle_east_africa",
)  # region_code 0..4
AGE_EDGES = (25.0, 35.0, 45.0, 55.0, 65.0)
AGE_BANDS = ("18-24", "25-34", "35-44", "45-54", "55-64", "65+")


@dataclass(frozen=True)
class Segmentation:
    """One profile feature cut into labelled values."""

    feature: str  # the feature the segment reads
    label: str  # what the answer calls it
    values: tuple[str, ...]
    edges: tuple[float, ...] | None = None  # bands; None: the value is an integer code

    def codes(self, column: np.ndarray) -> np.ndarray:
        """Segment index per row; -1 where the value is missing or unknown."""
        x = np.asarray(column, dtype=np.float64)
        if self.edges is not None:
            code = np.searchsorted(np.asarray(self.edges), x, side="right")
        else:
            code = np.where(np.isnan(x), -1, np.nan_to_num(x, nan=-1.0)).astype(np.int64)
        return np.where(np.isnan(x) | (code < 0) | (code >= len(self.values)), -1, code)


SEGMENTATIONS: tuple[Segmentation, ...] = (
    Segmentation("plan_tier", "plan_tier", PLAN_TIERS),
    Segmentation("region_code", "region", REGIONS),
    Segmentation("age_years", "age_band", AGE_BANDS, AGE_EDGES),
)


def segment_names() -> list[tuple[str, str]]:
    """Every (label, value) in the order of the flat segment index ``flat_codes`` uses."""
    return [(s.label, v) for s in SEGMENTATIONS for v in s.values]


def flat_codes(values: np.ndarray, names: tuple[str, ...]) -> np.ndarray:
    """(N, S) flat segment index per row and segmentation (-1: none); a segmentation whose
    feature is not among ``names`` is -1 throughout."""
    out = np.full((len(values), len(SEGMENTATIONS)), -1, dtype=np.int64)
    offset = 0
    for j, seg in enumerate(SEGMENTATIONS):
        if seg.feature in names:
            code = seg.codes(values[:, names.index(seg.feature)])
            out[:, j] = np.where(code >= 0, code + offset, -1)
        offset += len(seg.values)
    return out
