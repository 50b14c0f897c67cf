"""What a decision call answers: per-row codes, read without a Python object per row.

``Decisions`` holds arm indices, propensities and reason codes in request order; the
answer is encoded from these arrays (``serving.codecs.columnar``). Decision ids are
``<batch>-<row>``, so the log keeps one record per batch and a reward finds its row by
offset.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from serving.bandit.state import REASONS, Reason

REASON_NAMES = np.array(REASONS, dtype=object)
# plain ints for the per-request numpy work: numpy handles IntEnum members slower
POLICY, HOLDOUT, NOT_FOUND = int(Reason.POLICY), int(Reason.HOLDOUT), int(Reason.NOT_FOUND)
OPTED_OUT = int(Reason.OPTED_OUT)


@dataclass
class Decisions:
    """Per-row results in request order, as codes: the answer is encoded from these
    without a Python object per row (``serving.codecs.columnar``)."""

    arm_index: np.ndarray  # int64 index into ``arms``, -1: no decision
    propensity: np.ndarray  # float64, NaN: no decision
    reason_code: np.ndarray  # uint8 index into REASONS
    arms: tuple[str, ...]
    policy_version: str
    batch_id: str

    def __len__(self) -> int:
        return int(len(self.arm_index))

    @property
    def has_decision(self) -> np.ndarray:
        return self.arm_index >= 0

    @property
    def action(self) -> np.ndarray:
        """Object array of arm names (None: no decision), for offline callers and tests."""
        return np.array(self.arms + (None,), dtype=object)[self.arm_index]

    @property
    def reason(self) -> np.ndarray:
        return REASON_NAMES[self.reason_code]

    @property
    def decision_id(self) -> np.ndarray:
        """``<batch>-<row>`` per row with a decision, None elsewhere."""
        ids = np.full(len(self), None, dtype=object)
        rows = np.flatnonzero(self.has_decision)
        ids[rows] = np.strings.add(self.batch_id + "-", rows.astype(np.str_)).astype(object)
        return ids
