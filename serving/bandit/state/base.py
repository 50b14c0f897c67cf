"""The contract every bandit state store keeps, and the reference math behind it.

A store holds the policy statistics (one float64 blob per key plus a version counter),
the decision log, the pending copy of each decision a reward needs, the once-only
rewards and the contact-cap counters. Everything that must be exact across replica
processes (a contact reservation, a reward) is one atomic step in the store: a
``BEGIN IMMEDIATE`` transaction in sqlite, one Lua script in Redis.

Writes reach a store in groups (``Group``): the background committer hands it every
queued reservation and decision record at once, so one transaction (or one script plus
one pipeline) serves many requests.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from serving.bandit.state.records import BatchRecord, Pending, Reason


RewardRow = tuple[str, int, float, float]  # batch id, row, reward, when it was recorded
Cursor = dict[str, Any]  # a store's position in its log (``read_since``), plain data


@dataclass
class Reservation:
    """The contacts one ``decide`` asks for: rows of ``record`` that would reach the customer.

    The store checks and records them atomically, then ``settle`` turns the rows over the
    cap into the control arm before the record is logged, so the log shows what was sent.
    """

    record: BatchRecord
    rows: np.ndarray  # (k,) row indices of record
    window_s: float
    cap: int
    control: int

    @property
    def customer_ids(self) -> np.ndarray:
        return self.record.customer_ids[self.rows]

    @property
    def now(self) -> float:
        return self.record.t

    def settle(self, allowed: np.ndarray) -> None:
        capped = self.rows[~np.asarray(allowed, dtype=bool)]
        self.record.arm_index[capped] = self.control
        self.record.propensity[capped] = 1.0
        self.record.reason[capped] = Reason.CONTACT_CAP


@dataclass
class Group:
    """What one commit writes: reservations first (in queue order), then every record."""

    records: list[BatchRecord]  # in queue order, including the reservations' records
    reservations: list[Reservation] = field(default_factory=list)
    ttl_s: float = 7 * 24 * 3600.0  # how long a decision stays pending for its reward


@dataclass
class RewardUpdate:
    """Rewards for decisions found pending, and what each one teaches the policy."""

    key: str  # state key
    shape: tuple[int, int]  # (arms, statistics width)
    discount: float
    batch_ids: list[str]
    rows: np.ndarray  # (n,) row in its batch
    rewards: np.ndarray  # (n,)
    now: float
    inc: np.ndarray  # (n, width) statistic increments
    arms: np.ndarray  # (n,) arm whose statistics the increment goes to
    update: np.ndarray  # (n,) bool: learn from this reward (policy rows only)


@dataclass(frozen=True)
class Retention:
    """What ``trim`` keeps: decisions newer than ``before`` (time), within ``max_bytes`` of
    log (size), and always those newer than ``protect_after``: their reward window is open."""

    before: float  # epoch s: older decisions (and rewards) go
    protect_after: float  # epoch s: never trim a decision at or after this
    max_bytes: int | None = None
    contacts_before: float | None = None  # epoch s: contact times before it no longer count


@dataclass(frozen=True)
class Trimmed:
    """What one ``trim`` did, for the log line and the tests."""

    decisions: int  # decision batches (sqlite) or log entries (Redis) removed
    bytes_before: int
    bytes_after: int
    over_size: bool = False  # still over max_bytes: every decision left has an open window


class StateStore(Protocol):
    """Shared bandit state; ``commit`` and ``record_rewards`` are the atomic writers."""

    def read_state(self, key: str, shape: tuple[int, int]) -> tuple[int, np.ndarray]: ...

    def state_version(self, key: str) -> int: ...

    def erase(self, customer_id: int, pseudonym: int) -> dict[str, int]:
        """Make the customer's logged rows unlinkable, delete its rewards and contact times."""
        ...

    def commit(self, group: Group) -> None:
        """Reserve, settle and log a group; raise (writing nothing of it, where the store
        allows) when the store is unavailable."""
        ...

    def pending(self, batch_ids: list[str], rows: np.ndarray, dim: int) -> Pending: ...

    def record_rewards(self, upd: RewardUpdate) -> np.ndarray:
        """``RewardStatus`` per row; learning and the once-only check in one atomic step."""
        ...

    def read_log(
        self, since: float | None = None
    ) -> tuple[list[BatchRecord], dict[tuple[str, int], float]]: ...

    def read_since(
        self, since: float, cursor: Cursor | None = None
    ) -> tuple[list[BatchRecord], list[RewardRow], Cursor]:
        """Batches and rewards (batch, row, reward, recorded at) written after ``cursor``
        (None: decided or recorded from ``since``), and the cursor to pass next time:
        what is new since a reader's last look. A reward may come again; none is missed."""
        ...

    def trim(self, retention: Retention) -> Trimmed:
        """Drop old decisions and rewards by time, then by size, never one whose reward
        window is open (the committer thread calls it every ``bandit.trim_interval_s``)."""
        ...

    def close(self) -> None: ...


def discount_weights(n: int, discount: float) -> np.ndarray:
    """Row i of n sequential updates is discounted n-1-i times by the later ones."""
    return discount ** np.arange(n - 1, -1, -1, dtype=np.float64) if discount < 1 else np.ones(n)


def discounted_update(
    stats: np.ndarray, inc: np.ndarray, arms: np.ndarray, discount: float
) -> np.ndarray:
    """n sequential ``stats = discount * stats + inc_i`` updates in one step (the Redis
    script does the same one reward at a time)."""
    out = stats * (discount ** len(inc))
    np.add.at(out, arms.astype(np.int64), inc * discount_weights(len(inc), discount)[:, None])
    return out


def group_positions(customer_ids: np.ndarray) -> np.ndarray:
    """(n,) occurrence index of each id among earlier equal ids (0 for the first): a customer
    listed k times in one reservation is the k-th contact of that reservation."""
    order = np.argsort(customer_ids, kind="stable")
    s = customer_ids[order]
    start = np.r_[True, s[1:] != s[:-1]]
    idx = np.arange(len(s))
    first = np.maximum.accumulate(np.where(start, idx, 0))
    out = np.empty(len(s), dtype=np.int64)
    out[order] = idx - first
    return out
