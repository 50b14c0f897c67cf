"""Online histograms in every replica, combined through the shared state.

The scoring path hands each scored batch to ``Monitor.observe``: a reference to arrays it
already holds, appended to a queue (no copy, no binning). A daemon thread bins what is
queued into per-second buckets (``Binner``: per feature and score bin counts of each
model version; actions; segment rows, churn, contacts, holdouts) and writes each second
this replica touched to the shared state (``monitor:<minute>``, key
``<replica>:<second>``) every ``flush_interval_s``. A second that is still open is
written again with its new totals at the next flush.

Every replica also keeps a heartbeat (``monitor.replicas``): the time of its last flush,
and whether it closed. A replica that stopped without closing (killed) may have lost the
rows it saw after its last flush: ``/v1/monitor`` names it and that time (``lost``). A
graceful stop flushes first, so a restarted replica's counts and its successor's add up
within the same second. A queue overrun drops batches and counts their rows
(``dropped_rows`` in the heartbeat) rather than slow the scoring path.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from serving.monitoring.observation import Observation, Scored, join, layout
from serving.monitoring.reference import SMALL_BATCH, Binner, References
from serving.monitoring.segments import flat_codes, segment_names
from serving.shared_state import SharedState

log = logging.getLogger("reengage")

BUCKET_NS = "monitor:"  # + minute (epoch seconds // 60)
REPLICAS_NS = "monitor.replicas"
# queued batches are joined up to this many rows before binning: small requests then cost
# one binning between them, while the joined arrays stay small enough for the CPU's caches
JOIN_ROWS = 4096


@dataclass
class _VersionCounts:
    rows: int = 0
    features: np.ndarray | None = None
    score: np.ndarray | None = None
    fingerprint: str | None = None


@dataclass
class Bucket:
    """One second of one replica's counts."""

    t: int
    n_segments: int
    rows: int = 0
    decided: int = 0
    contacts: int = 0
    holdouts: int = 0
    churn_sum: float = 0.0
    actions: dict[str, int] = field(default_factory=dict)
    min_propensity: float | None = None
    segments: np.ndarray = field(init=False)  # (S, 5): rows, churn_sum, decided, contacts, holdouts
    models: dict[tuple[str, str], _VersionCounts] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.segments = np.zeros((self.n_segments, 5), np.float64)

    def doc(self, replica: str) -> dict[str, Any]:
        models: dict[str, dict[str, Any]] = {}
        for (model, version), c in self.models.items():
            models.setdefault(model, {})[version] = {
                "rows": c.rows,
                "fingerprint": c.fingerprint,
                "features": None if c.features is None else c.features.tolist(),
                "score": None if c.score is None else c.score.tolist(),
            }
        return {
            "t": self.t,
            "replica": replica,
            "rows": self.rows,
            "decided": self.decided,
            "contacts": self.contacts,
            "holdouts": self.holdouts,
            "churn_sum": self.churn_sum,
            "actions": self.actions,
            "min_propensity": self.min_propensity,
            "segments": self.segments.tolist(),
            "models": models,
        }


class Monitor:
    """This replica's collector; ``observe`` is the only call on the scoring path."""

    def __init__(
        self,
        store: SharedState,
        references: References,
        *,
        flush_interval_s: float = 1.0,
        retention_s: float = 3600.0,
        queue_max: int = 10_000,
        replica: str | None = None,
    ) -> None:
        self.store, self.references = store, references
        self.flush_interval_s, self.retention_s = flush_interval_s, retention_s
        self.replica = replica or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.started = time.time()
        self._queue: deque[Observation] = deque()
        self._queue_max = queue_max
        self._dropped_rows = 0
        self._buckets: dict[int, Bucket] = {}
        self._dirty: set[int] = set()
        self._columns: dict[tuple[tuple[str, ...], tuple[str, ...]], np.ndarray] = {}
        self._subsets: dict[
            tuple[int, int], np.ndarray | None
        ] = {}  # binners live as long as References
        self._n_segments = len(segment_names())
        self._lock = threading.Lock()  # one flusher at a time (the thread, close, tests)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._swept_minute = int((self.started - retention_s) // 60) - 10
        self.last_flush = 0.0
        self.errors = 0

    # -- the scoring path -----------------------------------------------------------------
    def observe(self, obs: Observation) -> None:
        """Queue one scored batch (O(1)); a full queue drops it and counts its rows."""
        if len(self._queue) >= self._queue_max:
            self._dropped_rows += len(obs.values)
            return
        self._queue.append(obs)

    @property
    def stopped(self) -> threading.Event:
        return self._stop

    # -- the thread -------------------------------------------------------------------------
    def start(self) -> "Monitor":
        self._heartbeat(closed=False)
        self._thread = threading.Thread(target=self._run, name="reengage-monitor", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.flush_interval_s):
            try:
                self.flush()
            except Exception:  # the store being down must not stop the next flush
                self.errors += 1
                log.warning("monitor flush failed", exc_info=True)

    def close(self) -> None:
        """Flush what is queued and mark this replica closed (nothing of it is lost)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.flush(closed=True)

    def abandon(self) -> None:
        """Stop without flushing, as a killed process would (tests)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def flush(self, closed: bool = False) -> int:
        """Bin the queue, write every second touched since the last flush; returns rows binned."""
        with self._lock:
            drained_at = (
                time.time()
            )  # what is queued later is stamped later: its seconds stay in memory
            rows = self._drain()
            for second in sorted(self._dirty):
                bucket = self._buckets[second]
                self.store.put(
                    BUCKET_NS + str(second // 60),
                    f"{self.replica}:{second}",
                    bucket.doc(self.replica),
                )
            self._dirty.clear()
            for second in [
                s for s in self._buckets if s < int(drained_at) - 1
            ]:  # closed and written
                del self._buckets[second]
            now = time.time()
            self.last_flush = now
            self._heartbeat(closed=closed)
            self._sweep(now)
            return rows

    def _drain(self) -> int:
        """Bin what is queued: the batches of one second and one layout are joined first, so
        many small requests cost one binning (the thread's work follows rows, not requests)."""
        groups: dict[tuple[Any, ...], list[list[Observation]]] = {}
        while self._queue:
            obs = self._queue.popleft()
            parts = groups.setdefault(layout(obs), [[]])
            if parts[-1] and sum(len(o.values) for o in parts[-1]) + len(obs.values) > JOIN_ROWS:
                parts.append([])
            parts[-1].append(obs)
        rows = 0
        for key, parts in groups.items():
            second = key[0]
            bucket = self._buckets.get(second)
            if bucket is None:
                bucket = self._buckets[second] = Bucket(second, self._n_segments)
            for batch in parts:
                obs = batch[0] if len(batch) == 1 else join(batch)
                self.add(bucket, obs)
                rows += len(obs.values)
            self._dirty.add(second)
        return rows

    def _heartbeat(self, closed: bool) -> None:
        self.store.put(
            REPLICAS_NS,
            self.replica,
            {
                "started": self.started,
                "flushed": self.last_flush or self.started,
                "closed": closed,
                "dropped_rows": self._dropped_rows,
                "flush_interval_s": self.flush_interval_s,
            },
        )

    def _sweep(self, now: float) -> None:
        """Delete the buckets of minutes past retention (any replica's), once per minute."""
        last = int((now - self.retention_s) // 60) - 1
        for minute in range(self._swept_minute + 1, last + 1):
            ns = BUCKET_NS + str(minute)
            for key in self.store.items(ns):
                self.store.delete(ns, key)
        self._swept_minute = max(self._swept_minute, last)
        for replica, doc in self.store.items(REPLICAS_NS).items():
            if doc.get("flushed", now) < now - self.retention_s:
                self.store.delete(REPLICAS_NS, replica)

    # -- binning -----------------------------------------------------------------------------
    def add(self, bucket: Bucket, obs: Observation) -> None:
        """Add one batch to a bucket: per version bin counts, actions, segments."""
        n = len(obs.values)
        if n == 0:
            return
        bucket.rows += n
        bucket.churn_sum += float(np.nansum(obs.churn))
        binned: list[tuple[Binner, np.ndarray]] = []  # this batch's slots, by binner
        for model, scored in obs.models.items():
            self._add_model(bucket, obs, model, scored, binned)
        contact = self._decisions(bucket, obs)
        codes = flat_codes(obs.values, obs.names)  # (n, S segmentations)
        valid = codes >= 0
        idx = codes[valid]
        weights = [np.ones(n), np.nan_to_num(obs.churn.astype(np.float64))]
        if contact is not None and obs.holdout is not None and obs.arm_index is not None:
            weights += [
                (obs.arm_index >= 0).astype(np.float64),
                contact.astype(np.float64),
                obs.holdout.astype(np.float64),
            ]
        for col, w in enumerate(weights):
            bucket.segments[:, col] += np.bincount(
                idx, np.broadcast_to(w[:, None], codes.shape)[valid], minlength=self._n_segments
            )

    def _add_model(
        self,
        bucket: Bucket,
        obs: Observation,
        model: str,
        scored: Scored,
        binned: list[tuple[Binner, np.ndarray]],
    ) -> None:
        if scored.codes is None:
            parts = [(scored.version, None)]
        else:
            parts = [
                (scored.versions[c], scored.codes == c)
                for c in np.unique(scored.codes).tolist()
                if c >= 0
            ]
        for version, mask in parts:
            binner = self.references.get(model, version)
            counts = bucket.models.get((model, version))
            if counts is None:
                counts = bucket.models[(model, version)] = _VersionCounts(
                    fingerprint=binner.fingerprint if binner else None
                )
            scores = scored.scores if mask is None else scored.scores[mask]
            counts.rows += len(scores)
            if binner is None:
                continue
            if mask is None and len(scores) > SMALL_BATCH:
                f = self._shared_counts(obs, binner, binned)
            else:
                x = obs.values[:, self._column_index(obs.names, binner)]
                f = binner.feature_counts(x if mask is None else x[mask])
            s = binner.score_counts(scores)
            counts.features = f if counts.features is None else counts.features + f
            counts.score = s if counts.score is None else counts.score + s

    def _shared_counts(
        self, obs: Observation, binner: Binner, binned: list[tuple[Binner, np.ndarray]]
    ) -> np.ndarray:
        """Feature counts of all rows, taking the slots of features another binner of this batch
        already binned the same way (the engagement model reads a subset of churn's columns,
        binned from the same training rows)."""
        for other, slots in binned:
            rows = self._subset(binner, other)
            if rows is not None:
                return binner.counts_of(slots[rows])
        slots = binner.slots(obs.values[:, self._column_index(obs.names, binner)])
        binned.append((binner, slots))
        return binner.counts_of(slots)

    def _subset(self, binner: Binner, other: Binner) -> np.ndarray | None:
        """Where ``binner``'s features sit among ``other``'s, when ``other`` bins every one of
        them identically; None otherwise (computed once per pair)."""
        key = (id(binner), id(other))
        if key not in self._subsets:
            where = {k: i for i, k in enumerate(other.keys)}
            found = [where.get(k) for k in binner.keys]
            self._subsets[key] = None if None in found else np.array(found, dtype=np.intp)
        return self._subsets[key]

    def _column_index(self, names: tuple[str, ...], binner: Binner) -> np.ndarray:
        key = (names, binner.features)
        index = self._columns.get(key)
        if index is None:
            index = self._columns[key] = np.array(
                [names.index(f) for f in binner.features], dtype=np.intp
            )
        return index

    def _decisions(self, bucket: Bucket, obs: Observation) -> np.ndarray | None:
        """Actions and contacts of the batch; the per-row contact mask (None without decisions)."""
        if obs.arm_index is None:
            return None
        decided = obs.arm_index >= 0
        counts = np.bincount(obs.arm_index[decided], minlength=len(obs.arms))
        for arm, c in zip(obs.arms, counts.tolist()):
            if c:
                bucket.actions[arm] = bucket.actions.get(arm, 0) + c
        control = obs.arms.index(obs.control_arm) if obs.control_arm in obs.arms else -2
        contact = decided & (obs.arm_index != control)
        bucket.decided += int(decided.sum())
        bucket.contacts += int(contact.sum())
        if obs.holdout is not None:
            bucket.holdouts += int(obs.holdout.sum())
        if obs.propensity is not None and decided.any():
            low = float(np.nanmin(np.where(decided, obs.propensity, np.nan)))
            if low == low:
                bucket.min_propensity = (
                    low if bucket.min_propensity is None else min(bucket.min_propensity, low)
                )
        return contact
