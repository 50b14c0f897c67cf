"""Consent: who may be contacted, recorded once, honoured by every replica's decisions.

``ConsentBook`` writes and reads the records in the shared state (sqlite in the data
directory or Redis, by the one state switch): namespace ``consent``, one document per
customer (``opted_out``, ``channel``, ``effective_at``), and namespace ``suppression``,
one document per erased customer keyed by the customer's keyed pseudonym, never the id,
so an erased customer who comes back is still opted out.

``ConsentView`` is what a decision reads: a sorted int64 array of opted-out ids, rebuilt
by ``Watched``'s thread when the namespace's generation moves (within
``privacy.consent_refresh_s``), and one ``searchsorted`` per request, never the store.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np

from serving.errors import DependencyUnavailable
from serving.privacy.pseudonym import pseudonym_hex, pseudonym_key
from serving.shared_state import Doc, SharedState, Watched, open_shared_state

CONSENT, SUPPRESSION = "consent", "suppression"
CHANNELS = ("email", "all")


class ConsentBook:
    """Consent and suppression records: the write side (CRM calls, erasure) and lookups."""

    def __init__(self, store: SharedState, key: bytes) -> None:
        self.store, self._key = store, key

    @classmethod
    def open(cls, settings: Any) -> ConsentBook:
        return cls(open_shared_state(settings), pseudonym_key(settings.privacy))

    def pseudonym(self, customer_id: int) -> str:
        return pseudonym_hex(customer_id, self._key)

    def set(
        self, customer_id: int, opted_out: bool, channel: str = "all", now: float | None = None
    ) -> Doc:
        """Record a choice (the latest one wins). Every arm of the bandit reaches the customer
        by email, so either channel governs every contact. An opt-in after an erasure is a
        new consent: it lifts the suppression entry too."""
        doc = {
            "opted_out": bool(opted_out),
            "channel": channel,
            "effective_at": round(time.time() if now is None else now, 6),
        }
        self.store.put(CONSENT, str(int(customer_id)), doc)
        if not opted_out:
            self.store.delete(SUPPRESSION, self.pseudonym(customer_id))
        return {"customer_id": int(customer_id), **doc}

    def get(self, customer_id: int) -> Doc:
        """The customer's standing: their record, else opted out by a suppression entry,
        else never recorded (contact allowed: ``opted_out`` false, ``effective_at`` null)."""
        doc = self.store.get(CONSENT, str(int(customer_id)))
        suppressed = self.store.get(SUPPRESSION, self.pseudonym(customer_id))
        if doc is None and suppressed is not None:
            doc = {"opted_out": True, "channel": "all", "effective_at": suppressed.get("erased_at")}
        base = doc or {"opted_out": False, "channel": "all", "effective_at": None}
        return {"customer_id": int(customer_id), **base, "suppressed": suppressed is not None}

    def suppress(self, customer_id: int, now: float | None = None) -> bool:
        """Erasure's last step: drop the consent record (it holds the id) and keep only the
        keyed pseudonym; True when the customer had a consent record."""
        self.store.put(
            SUPPRESSION,
            self.pseudonym(customer_id),
            {"erased_at": round(time.time() if now is None else now, 6)},
        )
        return self.store.delete(CONSENT, str(int(customer_id)))


_FILTER_BITS = 22  # a 4 MiB bool table: few false candidates below a million opt-outs
_LOW = (1 << _FILTER_BITS) - 1


class OptedOut:
    """Sorted opted-out ids and a filter table indexed by an id's low bits: a request's ids
    are one gather in the table, and only the few that hit it are searched in the sorted
    array (a binary search per id over a large array is a cache miss per step)."""

    def __init__(self, sorted_ids: np.ndarray) -> None:
        self.ids = np.asarray(sorted_ids, dtype=np.int64)
        self.table = np.zeros(1 << _FILTER_BITS if len(self.ids) else 0, bool)
        self.table[self.ids & _LOW] = True

    def __len__(self) -> int:
        return len(self.ids)

    def mask(self, customer_ids: np.ndarray) -> np.ndarray | None:
        """Opted-out mask, None when no id is opted out."""
        if len(self.ids) == 0:
            return None
        ids = np.asarray(customer_ids, dtype=np.int64)
        if len(ids) == 1:  # one customer in scalars: numpy's fixed cost per call would dominate
            one = int(ids[0])
            return np.ones(1, bool) if self.table[one & _LOW] and self.holds(one) else None
        rows = np.flatnonzero(self.table[ids & _LOW])
        if len(rows) == 0:
            return None
        pos = np.minimum(np.searchsorted(self.ids, ids[rows]), len(self.ids) - 1)
        hit = self.ids[pos] == ids[rows]
        if not hit.any():
            return None
        out = np.zeros(len(ids), bool)
        out[rows] = hit
        return out

    def holds(self, customer_id: int) -> bool:
        i = int(np.searchsorted(self.ids, customer_id))
        return i < len(self.ids) and int(self.ids[i]) == customer_id


class ConsentView:
    """The opted-out ids as a sorted array, kept current by a watcher thread."""

    def __init__(self, store: SharedState, refresh_s: float) -> None:
        self.opted_out = OptedOut(np.empty(0, dtype=np.int64))
        self.watched = Watched(store, CONSENT)
        self.watched.on_change(self._rebuild)
        try:
            self.watched.refresh()  # the first answer already honours what is recorded
        except DependencyUnavailable:
            self.watched.errors += 1  # decisions are refused until the thread loads it
        self.watched.start(refresh_s)

    @property
    def loaded(self) -> bool:
        return self.watched.generation >= 0

    async def ready(self) -> bool:
        """A replica that has never read consent is not ready (it would contact anyone)."""
        return self.loaded

    def _rebuild(self, snapshot: dict[str, Doc]) -> None:
        ids = np.fromiter(
            (int(k) for k, v in snapshot.items() if v.get("opted_out")), dtype=np.int64
        )
        ids.sort()
        self.opted_out = OptedOut(ids)  # replaced whole: a reader sees the old or the new one

    def mask(self, customer_ids: np.ndarray) -> np.ndarray | None:
        """Opted-out mask per id, or None when no row is (nobody opted out: no work at all).
        Before the first load every decision is refused: consent fails closed."""
        held = self.opted_out
        if self.watched.generation < 0:
            raise DependencyUnavailable(
                f"consent is not loaded yet from the {self.watched.store.name}"
            )
        return held.mask(customer_ids) if len(held) else None

    def is_opted_out(self, customer_id: int) -> bool:
        if self.watched.generation < 0:
            raise DependencyUnavailable(
                f"consent is not loaded yet from the {self.watched.store.name}"
            )
        return self.opted_out.holds(customer_id)

    def close(self) -> None:
        self.watched.stop()


_views: dict[tuple[str, str], ConsentView] = {}
_lock = threading.Lock()


def consent_view(settings: Any) -> ConsentView:
    """This process's view of the deployment's consent (one watcher per store, shared by
    the dataplane and whatever else asks in the same process)."""
    b = settings.bandit
    where = (b.backend, b.redis_url if b.backend == "redis" else str(settings.data_dir))
    with _lock:
        view = _views.get(where)
        if view is None:
            view = _views[where] = ConsentView(
                open_shared_state(settings), settings.privacy.consent_refresh_s
            )
        return view
