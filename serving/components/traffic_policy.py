"""Traffic policies between model versions: sticky bucket split, shadow share, row tokens.

A policy per model has a default version, weighted candidates (percent of customers)
and an optional shadow (percent of rows scored again off the answer), Seldon Core 2's
experiment shape.

Assignment is by stable buckets: each customer hashes once per request batch (the salted
splitmix64 of ``serving.hashing``, numpy over the whole id array) into one of ``BUCKETS``
buckets, and a table maps every bucket to its version. The salt is fixed when a rollout
starts and stored with the policy. Each candidate owns bucket ranges; a change recomputes
the table from the previous one (``rebalance``) so that only the customers who must move
do: a candidate raised or added takes buckets from the default alone, one lowered or
removed gives them back to the default, and an unchanged candidate keeps every bucket.
The shadow samples rows with its own salt, independent of the buckets.

The desired state the replicas follow is ``components.desired``; the shadow's scoring
and summaries are ``components.shadow``.
"""

from __future__ import annotations

import base64
import json
import secrets
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from serving.errors import Conflict, InvalidRequest
from serving.hashing import salted_hash
from serving.settings import TrafficPolicyConfig

__all__ = [
    "BUCKETS",
    "PromotionRefused",
    "RowVersions",
    "TrafficPolicy",
    "VersionRefused",
    "new_salt",
    "rebalance",
    "row_token",
    "versions_from_token",
]

BUCKETS = 10_000  # assignment resolution: 0.01 percent of customers
Ranges = list[list[int]]  # [[start, end), ...] bucket ranges
# a split batch: per row an index into the versions, and the salt it was assigned under
RowVersions = tuple[np.ndarray, tuple[str, ...], str]


class VersionRefused(InvalidRequest):
    """A version that cannot serve (corrupt file, features the lookup cannot feed, a failed
    warm-up): it never takes traffic, and the message names the cause."""

    error_type = "version_refused"


class PromotionRefused(Conflict):
    """The evidence does not show the candidate non-inferior; ``force`` overrides. The
    error body carries the evidence (estimates, bounds, decisions still needed)."""

    error_type = "promotion_refused"

    def __init__(
        self, message: str, field: str | None = None, evidence: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message, field)
        self.evidence = evidence

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.message, self.field, self.evidence))

    def to_body(self) -> dict[str, Any]:
        body = super().to_body()
        if self.evidence is not None:
            body["error"]["evidence"] = self.evidence
        return body


def new_salt() -> str:
    """The salt of a rollout started without one: every rollout samples its own customers."""
    return secrets.token_hex(8)


def bucket_counts(candidates: list[tuple[str, float]]) -> list[int]:
    """Buckets per candidate for its percent weight (0.01 percent resolution)."""
    counts = [int(round(w * BUCKETS / 100)) for _, w in candidates]
    if sum(counts) > BUCKETS:
        raise InvalidRequest(
            "candidate weights add up to more than 100 percent", field="candidates"
        )
    return counts


def _runs(owner: np.ndarray, code: int) -> Ranges:
    """The [start, end) runs of buckets equal to ``code``."""
    mask = np.r_[False, owner == code, False].astype(np.int8)
    edges = np.flatnonzero(np.diff(mask))
    return [[int(a), int(b)] for a, b in zip(edges[::2], edges[1::2])]


def owner_table(versions: list[str], buckets: dict[str, Ranges] | None) -> np.ndarray:
    """Per bucket, the index of its owner in ``versions`` (-1: the default)."""
    owner = np.full(BUCKETS, -1, np.int16)
    for i, version in enumerate(versions):
        for start, end in (buckets or {}).get(version, []):
            owner[start:end] = i
    return owner


def rebalance(
    candidates: list[tuple[str, float]], previous: dict[str, Ranges] | None
) -> dict[str, Ranges]:
    """Bucket ranges per candidate for ``candidates`` from the ``previous`` ranges, moving
    the fewest customers: a candidate that shrinks gives its highest buckets back to the
    default; one that grows (or is new) takes the lowest buckets the default held before
    this change (buckets just given back only when those run out); a removed one gives
    all back; an unchanged one keeps its ranges."""
    versions = [v for v, _ in candidates]
    targets = bucket_counts(candidates)
    owner = owner_table(versions, previous)
    was_default = owner == -1
    for i, target in enumerate(targets):
        have = np.flatnonzero(owner == i)
        if len(have) > target:
            owner[have[target:]] = -1
    for i, target in enumerate(targets):
        need = target - int(np.count_nonzero(owner == i))
        if need > 0:
            free = owner == -1
            order = np.r_[np.flatnonzero(free & was_default), np.flatnonzero(free & ~was_default)]
            owner[order[:need]] = i
    return {v: _runs(owner, i) for i, v in enumerate(versions)}


@dataclass(frozen=True)
class TrafficPolicy:
    """What a replica applies: versions resolved, the bucket table, the shadow's share."""

    model: str
    default: str
    candidates: tuple[tuple[str, float], ...] = ()
    shadow: str | None = None
    shadow_percent: float = 0.0
    salt: str = ""
    buckets: dict[str, Ranges] = field(default_factory=dict, compare=False)
    _table: np.ndarray = field(
        default_factory=lambda: np.zeros(BUCKETS, np.int8), compare=False, repr=False
    )

    @classmethod
    def build(
        cls,
        model: str,
        config: TrafficPolicyConfig,
        default: str,
        previous: dict[str, Ranges] | None = None,
    ) -> "TrafficPolicy":
        """The policy of ``config``; its bucket ranges are ``config.buckets`` when set (a
        stored policy), else rebalanced from ``previous`` (a change) or laid out afresh."""
        cands = tuple((c.version, float(c.weight)) for c in config.candidates if c.weight > 0)
        salt = config.salt if config.salt is not None else model
        if config.buckets is not None:
            buckets = {v: [list(r) for r in config.buckets.get(v, [])] for v, _ in cands}
            if [sum(e - s for s, e in buckets[v]) for v, _ in cands] != bucket_counts(list(cands)):
                raise InvalidRequest(
                    "bucket ranges do not match the candidate weights", field="buckets"
                )
        else:
            buckets = rebalance(list(cands), previous)
        table = (owner_table([v for v, _ in cands], buckets) + 1).astype(
            np.int8
        )  # 0 default, i candidate i
        shadow = config.shadow
        return cls(
            model,
            default,
            cands,
            shadow.version if shadow else None,
            shadow.percent if shadow else 0.0,
            salt,
            buckets,
            table,
        )

    @property
    def versions(self) -> tuple[str, ...]:
        """Every version the policy needs loaded: default, candidates, shadow."""
        out = [self.default, *(v for v, _ in self.candidates)]
        if self.shadow:
            out.append(self.shadow)
        return tuple(dict.fromkeys(out))

    @property
    def splits(self) -> bool:
        return bool(self.candidates)

    def to_config(self) -> dict[str, Any]:
        return {
            "default": self.default,
            "candidates": [{"version": v, "weight": w} for v, w in self.candidates],
            "shadow": {"version": self.shadow, "percent": self.shadow_percent}
            if self.shadow
            else None,
            "salt": self.salt,
            "buckets": self.buckets,
        }

    def bucket_of(self, customer_ids: np.ndarray) -> np.ndarray:
        return (salted_hash(customer_ids, self.salt) % np.uint64(BUCKETS)).astype(np.intp)

    def assign(self, customer_ids: np.ndarray) -> tuple[np.ndarray, tuple[str, ...]]:
        """Per row, the index into the returned versions (default first, then candidates)."""
        versions = (self.default, *(v for v, _ in self.candidates))
        if not self.candidates:
            return np.zeros(len(customer_ids), np.int8), versions
        return self._table[self.bucket_of(customer_ids)], versions

    def shadow_mask(self, customer_ids: np.ndarray) -> np.ndarray:
        """Rows the shadow also scores: a hash under its own salt, so its sample does not
        depend on the buckets (nor move when candidates change)."""
        if self.shadow_percent >= 100:
            return np.ones(len(customer_ids), bool)
        unit = (salted_hash(customer_ids, f"{self.salt}\x00shadow") >> np.uint64(11)).astype(
            np.float64
        )
        return unit / float(1 << 53) < self.shadow_percent / 100


def row_token(codes: np.ndarray, versions: tuple[str, ...]) -> str:
    """Each row's version in one string for the decision log: the versions and the per-row
    codes (int8, -1 not scored) in base64, so the log reads back without the policy."""
    raw = base64.b64encode(np.asarray(codes, np.int8).tobytes()).decode()
    return json.dumps({"versions": list(versions), "codes": raw}, separators=(",", ":"))


def versions_from_token(token: str, n: int) -> np.ndarray:
    """The version of each of ``n`` rows recorded with ``row_token`` (object array, None
    where a row was not scored or the token is unreadable)."""
    out = np.full(n, None, dtype=object)
    try:
        doc = json.loads(token)
        codes = np.frombuffer(base64.b64decode(doc["codes"]), np.int8)
        versions = np.asarray([*doc["versions"], None], dtype=object)
    except (ValueError, KeyError, TypeError):
        return out
    if len(codes) == n:
        out[:] = versions[np.where(codes >= 0, codes, len(versions) - 1)]
    return out
