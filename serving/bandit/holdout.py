"""Who gets the control arm instead of the policy's choice: the stable holdout (a salted
hash of the customer id, ``serving.hashing``) and the contact cap (a reservation of the
rows that would contact a customer, made exact by the state store)."""

from __future__ import annotations

import numpy as np

from serving.bandit.decisions import POLICY
from serving.bandit.state import BatchRecord, Reservation
from serving.hashing import salted_hash, salted_hash_one

_U11 = np.uint64(11)


def holdout_mask(customer_ids: np.ndarray, share: float, salt: str) -> np.ndarray:
    """Stable per-customer holdout: the salted hash (``serving.hashing``) mapped to [0, 1)
    below ``share``."""
    if share <= 0:
        return np.zeros(len(customer_ids), bool)
    return (salted_hash(customer_ids, salt) >> _U11).astype(np.float64) / float(1 << 53) < share


def holdout_one(customer_id: int, share: float, salt: str) -> bool:
    """``holdout_mask`` of one id in Python ints: the same hash and the same answer."""
    if share <= 0:
        return False
    return (salted_hash_one(customer_id, salt) >> 11) / float(1 << 53) < share


def contact_reservation(
    rec: BatchRecord, *, cap: int, window_s: float, control: int
) -> Reservation | None:
    """The reservation of a batch's rows that contact a customer: those beyond ``cap``
    contacts per ``window_s`` become the control arm (reason ``contact_cap``) when the
    store applies it. Rows that contact nobody, or caps off, need none and wait for
    nothing."""
    if cap <= 0 or control < 0:
        return None
    if rec.n == 1:  # the single-customer path, without three numpy calls
        contacts = rec.reason[0] == POLICY and rec.arm_index[0] != control
        rows = np.zeros(1 if contacts else 0, np.intp)
    else:
        rows = np.flatnonzero((rec.reason == POLICY) & (rec.arm_index != control))
    return Reservation(rec, rows, window_s, cap, control) if len(rows) else None
