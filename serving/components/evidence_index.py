"""Per-version running sums of a rollout's evidence, kept up to date from what is new.

Status and promote need each version's resolved decisions (count, reward sum, sum of
squares: ``components.evidence.Stats``). Reading the whole decision log for them costs
the log's size on every call; ``EvidenceIndex`` instead reads, on each call, only the
decisions and rewards written since its previous call (the stores' ``read_since`` from
a cursor: the log's write order; a reward read twice counts once), and keeps:

* per version and minute of decision, the decisions and the rewarded ones among them, for
  minutes whose reward window is still open; a minute whose window closed folds into the
  version's closed count (its unrewarded decisions are now reward 0);
* per version, the sum and sum of squares of every reward;
* the rows' versions of the batches whose window is open (a reward arriving later needs
  its decision's version), dropped once the window closed.

So a call costs what was written since the last one plus the open minutes, whatever the
log holds. The first call of a process after a rollout starts reads the rollout once.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from serving.bandit.state.records import BatchRecord, Reason
from serving.components.evidence import Stats, batch_versions


@dataclass
class RolloutLedger:
    """One model's running sums since ``since`` (the rollout's start)."""

    model: str
    since: float
    window_s: float
    decisions: Counter[tuple[str, int]] = field(
        default_factory=Counter
    )  # (version, minute), window open
    rewarded: Counter[tuple[str, int]] = field(default_factory=Counter)
    closed: Counter[str] = field(default_factory=Counter)  # decisions whose window closed
    total: defaultdict[str, float] = field(default_factory=lambda: defaultdict(float))
    squares: defaultdict[str, float] = field(default_factory=lambda: defaultdict(float))
    batches: dict[str, tuple[float, np.ndarray | None, set[int]]] = field(default_factory=dict)
    cursor: dict[str, Any] | None = None  # the store's position after the last look
    closed_minute: int = -1

    def add_batch(self, rec: BatchRecord) -> None:
        if rec.batch_id in self.batches or rec.t < self.since:
            return
        versions = batch_versions(rec.model_versions or {}, self.model, rec.n)
        if versions is not None:
            versions = versions.copy()
            versions[(rec.reason != Reason.POLICY) | (rec.arm_index < 0)] = None
            minute = int(rec.t // 60)
            names, counts = np.unique(versions[versions != None].astype(str), return_counts=True)  # noqa: E711
            for name, count in zip(names.tolist(), counts.tolist()):
                if minute > self.closed_minute:
                    self.decisions[(name, minute)] += count
                else:
                    self.closed[name] += count
        self.batches[rec.batch_id] = (rec.t, versions, set())

    def add_reward(self, batch_id: str, row: int, reward: float) -> None:
        entry = self.batches.get(batch_id)
        if entry is None or entry[1] is None or row in entry[2] or not 0 <= row < len(entry[1]):
            return
        t, versions, seen = entry
        version = versions[row]  # type: ignore[index]
        if version is None:
            return
        seen.add(row)
        self.total[version] += reward
        self.squares[version] += reward * reward
        if int(t // 60) > self.closed_minute:
            self.rewarded[(version, int(t // 60))] += 1

    def close(self, now: float) -> None:
        """Fold the minutes whose reward window has closed; forget their batches."""
        last = (
            int((now - self.window_s) // 60) - 1
        )  # minute m closes once (m + 1) * 60 + window <= now
        if last > self.closed_minute:
            self.closed_minute = last
            for key in [k for k in self.decisions if k[1] <= last]:
                self.closed[key[0]] += self.decisions.pop(key)
                self.rewarded.pop(key, None)
        horizon = (
            now - self.window_s - 60
        )  # a reward recorded at its window's end may be read a little later
        while self.batches:  # in read order, i.e. by decision time: the oldest first
            bid, (t, _, _) = next(iter(self.batches.items()))
            if t >= horizon:
                break
            del self.batches[bid]

    def stats(self) -> dict[str, Stats]:
        resolved = Counter(self.closed)
        for (version, _), count in self.rewarded.items():
            resolved[version] += count
        versions = set(self.closed) | {v for v, _ in self.decisions}
        return {
            v: Stats(resolved[v], float(self.total[v]), float(self.squares[v]))
            for v in sorted(versions)
        }


class EvidenceIndex:
    """One ``RolloutLedger`` per model, refreshed from a bandit state store."""

    def __init__(self, store_factory: Callable[[], Any], window_s: float) -> None:
        self._factory = store_factory
        self._store: Any = None
        self.window_s = window_s
        self._ledgers: dict[str, RolloutLedger] = {}
        self._lock = threading.Lock()

    def refresh(self, model: str, since: float, now: float | None = None) -> dict[str, Stats]:
        """Each version's resolved decisions since ``since`` (blocking I/O: call it in a thread)."""
        now = time.time() if now is None else now
        with self._lock:
            if self._store is None:
                self._store = self._factory()
            ledger = self._ledgers.get(model)
            if ledger is None or ledger.since != since:
                ledger = self._ledgers[model] = RolloutLedger(model, since, self.window_s)
            batches, rewards, ledger.cursor = self._store.read_since(since, ledger.cursor)
            for rec in batches:
                ledger.add_batch(rec)
            for bid, row, reward, _ in rewards:
                ledger.add_reward(bid, row, reward)
            ledger.close(now)
            return ledger.stats()

    def close(self) -> None:
        with self._lock:
            if self._store is not None:
                self._store.close()
                self._store = None
