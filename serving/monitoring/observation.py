"""What the scoring path hands the monitor: one scored request's arrays, by reference.

Kept apart from the collector so the data plane and the benchmarks depend on these plain
types, not on the thread that bins them. ``join`` lets the collector bin many small
requests as one when they share a layout (same second, columns, versions, decisions).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Scored:
    """One model's part of a scored batch: the version of every row and the scores."""

    version: str  # the one version, or the comma-joined versions when split
    scores: np.ndarray  # (n,) float32
    codes: np.ndarray | None = None  # (n,) version index per row when the rows were split
    versions: tuple[str, ...] = ()


@dataclass(frozen=True)
class Observation:
    """What one request scored (found rows only), as the scoring path already holds it."""

    t: float
    values: np.ndarray  # (n, F) float32
    names: tuple[str, ...]
    models: dict[str, Scored]
    churn: np.ndarray  # (n,) the churn score of each row, for mean churn per segment
    arm_index: np.ndarray | None = None  # (n,) int64, -1: no decision
    arms: tuple[str, ...] = ()
    propensity: np.ndarray | None = None
    holdout: np.ndarray | None = None  # (n,) bool
    control_arm: str = "no_contact"


def layout(obs: Observation) -> tuple[Any, ...]:
    """What batches must share to be binned as one: second, columns, versions, decisions."""
    models = tuple((m, sc.version, sc.versions, sc.codes is None) for m, sc in obs.models.items())
    return (
        int(obs.t),
        obs.names,
        models,
        obs.arms,
        obs.control_arm,
        obs.arm_index is None,
        obs.propensity is None,
        obs.holdout is None,
    )


def join(batch: list[Observation]) -> Observation:
    """Batches of one layout as one (row order kept)."""
    first = batch[0]

    def cat(arrays: list[np.ndarray | None]) -> np.ndarray | None:
        """One layout: a field's arrays are all present or all None (its first says which)."""
        if arrays[0] is None:
            return None
        present = [a for a in arrays if a is not None]
        if len(present) != len(arrays):
            raise TypeError("observations of one layout differ in which arrays they carry")
        return np.concatenate(present)

    models = {
        m: Scored(
            sc.version,
            np.concatenate([o.models[m].scores for o in batch]),
            cat([o.models[m].codes for o in batch]),
            sc.versions,
        )
        for m, sc in first.models.items()
    }
    return Observation(
        first.t,
        np.concatenate([o.values for o in batch]),
        first.names,
        models,
        np.concatenate([o.churn for o in batch]),
        cat([o.arm_index for o in batch]),
        first.arms,
        cat([o.propensity for o in batch]),
        cat([o.holdout for o in batch]),
        first.control_arm,
    )
