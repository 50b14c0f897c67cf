"""What the bandit stores, and the bytes it stores it as: one codec for both stores.

A ``decide`` call is one ``BatchRecord`` (arrays, not rows). The sqlite and Redis stores
keep the same encoded fields (``encode_record``), so reading a logged batch back
(``decode_record``) and decoding what a reward needs from its decision (``Pending.fill``)
are written once, here, and cannot drift apart between the stores.
"""

from __future__ import annotations

import functools
import io
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

import numpy as np

from serving.privacy.pseudonym import pseudonyms

REASONS = ("policy", "holdout", "contact_cap", "not_found", "opted_out")


class Reason(IntEnum):
    """Why a row got its action; stored as a uint8 that indexes ``REASONS``."""

    POLICY = 0
    HOLDOUT = 1
    CONTACT_CAP = 2
    NOT_FOUND = 3
    OPTED_OUT = 4  # the customer withdrew consent (or was erased): no contact, propensity 1


class RewardStatus(IntEnum):
    """What recording one reward did; int8 per row (the Redis reward script returns these)."""

    RECORDED = 1
    UNKNOWN_DECISION = 0  # no such decision, or its reward window is over
    ALREADY_REWARDED = -1


@dataclass
class BatchRecord:
    """One ``decide`` call: the replayable record of every row, in request order."""

    batch_id: str
    t: float
    policy: str
    policy_version: str
    model_versions: dict[str, str]
    arms: tuple[str, ...]
    context_names: tuple[str, ...]
    customer_ids: np.ndarray  # (n,) int64
    context: np.ndarray  # (n, d) float32
    arm_index: np.ndarray  # (n,) int16, -1: no decision
    propensity: np.ndarray  # (n,) float64, NaN: no decision
    reason: np.ndarray  # (n,) uint8 index into REASONS
    feature_digest: np.ndarray | None = None
    feature_ts: np.ndarray | None = None
    # the log holds keyed pseudonyms of ``customer_ids`` (serving.privacy), computed when the
    # record is encoded, on the committer's thread; None: the ids as given (offline callers)
    pseudonym_key: bytes | None = field(default=None, repr=False)
    # (n,) bool, the rows that had features (the decide call's eligible mask); not stored.
    # Withdrawn consent outranks not_found in ``reason``, so this says which opted-out rows
    # had no features: they are logged without a pseudonym, as not_found rows are
    eligible: np.ndarray | None = field(default=None, repr=False)

    @property
    def n(self) -> int:
        return int(len(self.customer_ids))

    @property
    def dim(self) -> int:
        return int(self.context.shape[1])


# 4 bytes per row (int16 arm, uint8 reason, pad): a Redis GETRANGE reads one row's meta.
META = np.dtype([("arm", "<i2"), ("reason", "u1"), ("pad", "u1")])


def encode_meta(arm_index: np.ndarray, reason: np.ndarray) -> bytes:
    m = np.zeros(len(arm_index), dtype=META)
    m["arm"], m["reason"] = arm_index, reason
    return m.tobytes()


def decode_meta(raw: bytes) -> tuple[np.ndarray, np.ndarray]:
    """(arm int64, reason uint8) per row of an encoded meta blob."""
    m = np.frombuffer(raw, dtype=META)
    return m["arm"].astype(np.int64), m["reason"].copy()


def _npy(a: np.ndarray | None) -> bytes | None:
    """Optional arrays of any shape and dtype (feature digests, timestamps) keep both: the
    bytes ``np.save`` writes, with the header made once per dtype and shape (``np.save``
    formats it on every call, a large part of encoding a one-customer record)."""
    if a is None:
        return None
    a = np.ascontiguousarray(a)
    if a.dtype.hasobject:
        raise ValueError("object arrays are not stored")
    descr = np.lib.format.dtype_to_descr(a.dtype)
    if not isinstance(descr, str):
        raise ValueError("structured arrays are not stored")
    return _npy_header(descr, a.shape) + a.tobytes()


@functools.lru_cache(maxsize=256)
def _npy_header(descr: str, shape: tuple[int, ...]) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buf, {"descr": descr, "fortran_order": False, "shape": shape}
    )
    return buf.getvalue()


@functools.lru_cache(maxsize=64)
def _json(value: tuple[str, ...]) -> str:
    """Arm and context names: the same few tuples in every record."""
    return json.dumps(list(value))


def _from_npy(b: bytes | None) -> np.ndarray | None:
    return None if b is None or len(b) == 0 else np.load(io.BytesIO(b), allow_pickle=False)


def encode_record(rec: BatchRecord) -> dict[str, Any]:
    """Field name -> str / number / bytes / None: a sqlite row and a Redis stream entry alike."""
    return {
        "batch_id": rec.batch_id,
        "t": rec.t,
        "n": rec.n,
        "d": rec.dim,
        "policy": rec.policy,
        "policy_version": rec.policy_version,
        "model_versions": json.dumps(rec.model_versions),
        "arms": _json(tuple(rec.arms)),
        "context_names": _json(tuple(rec.context_names)),
        "customer_ids": _logged_ids(rec).astype("<i8").tobytes(),
        "context": rec.context.astype("<f4").tobytes(),
        "meta": encode_meta(rec.arm_index, rec.reason),
        "propensity": rec.propensity.astype("<f8").tobytes(),
        "feature_digest": _npy(rec.feature_digest),
        "feature_ts": _npy(rec.feature_ts),
    }


def _logged_ids(rec: BatchRecord) -> np.ndarray:
    """Keyed pseudonyms; 0 for rows without features (no decision, no reward: nothing to
    keep, and an erased customer asked about again leaves no trace, though its suppression
    entry makes it an opted-out row)."""
    if rec.pseudonym_key is None:
        return rec.customer_ids
    ids = pseudonyms(rec.customer_ids, rec.pseudonym_key)
    unknown = rec.reason == Reason.NOT_FOUND
    if rec.eligible is not None:
        unknown |= ~rec.eligible
    if unknown.any():
        ids[unknown] = 0
    return ids


def _text(v: str | bytes) -> str:
    return v.decode() if isinstance(v, bytes) else v


def decode_record(f: Mapping[str, Any]) -> BatchRecord:
    """The inverse of ``encode_record``; Redis hands back bytes where sqlite has str."""
    n, d = int(f["n"]), int(f["d"])
    arm, reason = decode_meta(f["meta"])
    return BatchRecord(
        _text(f["batch_id"]),
        float(f["t"]),
        _text(f["policy"]),
        _text(f["policy_version"]),
        json.loads(f["model_versions"]),
        tuple(json.loads(f["arms"])),
        tuple(json.loads(f["context_names"])),
        np.frombuffer(f["customer_ids"], "<i8").copy(),
        np.frombuffer(f["context"], "<f4").reshape(n, d).copy(),
        arm.astype(np.int16),
        np.frombuffer(f["propensity"], "<f8").copy(),
        reason,
        _from_npy(f.get("feature_digest")),
        _from_npy(f.get("feature_ts")),
    )


def erased_rows(raw_ids: bytes, targets: np.ndarray) -> np.ndarray:
    """Rows of an encoded ``customer_ids`` blob that hold any of ``targets`` (the erased
    customer's pseudonym, and its raw id for logs written without pseudonyms)."""
    return np.flatnonzero(np.isin(np.frombuffer(raw_ids, "<i8"), targets))


def tombstone(rec: BatchRecord, rows: np.ndarray) -> BatchRecord:
    """Make ``rows`` of a logged batch unlinkable to anyone, in place: a fresh random
    pseudonym (no key maps an id to it), context, feature digest and feature time zeroed,
    no action (arm -1, so a late reward is refused as for an unknown decision), reason
    ``opted_out`` (so OPE and evidence leave them out). Row offsets stay, so every other
    row's decision id still finds its row."""
    rng = np.random.default_rng()
    rec.customer_ids = rec.customer_ids.copy()
    rec.customer_ids[rows] = rng.integers(
        np.iinfo(np.int64).min, np.iinfo(np.int64).max, len(rows), dtype=np.int64
    )
    rec.context[rows] = 0.0
    rec.arm_index[rows] = -1
    rec.propensity[rows] = np.nan
    rec.reason = rec.reason.copy()
    rec.reason[rows] = Reason.OPTED_OUT
    for name in ("feature_digest", "feature_ts"):
        arr = getattr(rec, name)
        if arr is not None and arr.ndim >= 1 and len(arr) == rec.n:
            arr = arr.copy()
            arr[rows] = 0
            setattr(rec, name, arr)
    rec.pseudonym_key = None  # the ids are pseudonyms already
    return rec


@dataclass
class Pending:
    """What a reward needs from its decision, for a list of (batch, row) pairs."""

    found: np.ndarray  # (n,) bool: decision exists (any age)
    t: np.ndarray  # (n,) decision time
    arm: np.ndarray  # (n,) int
    reason: np.ndarray  # (n,) uint8
    context: np.ndarray  # (n, d) float32
    dim_ok: np.ndarray  # (n,) bool: the stored context has today's width

    @classmethod
    def empty(cls, n: int, dim: int) -> "Pending":
        return cls(
            np.zeros(n, bool),
            np.full(n, np.nan),
            np.full(n, -1),
            np.zeros(n, np.uint8),
            np.zeros((n, dim), np.float32),
            np.zeros(n, bool),
        )

    def fill(
        self, sel: np.ndarray, t: float, width: int, meta: bytes, context: bytes, rows: np.ndarray
    ) -> None:
        """Positions ``sel`` of this lookup from one stored batch (or a slice of it): ``meta``
        and ``context`` hold encoded rows, ``rows`` picks one of them per position."""
        arm, reason = decode_meta(meta)
        self.found[sel], self.t[sel] = True, t
        self.arm[sel], self.reason[sel] = arm[rows], reason[rows]
        if width == self.context.shape[1] and len(context) == 4 * width * len(arm):
            self.context[sel] = np.frombuffer(context, "<f4").reshape(len(arm), width)[rows]
            self.dim_ok[sel] = True
