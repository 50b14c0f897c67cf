"""The embedded contact ledger: per customer, the times of its recent contacts, in LMDB.

Why LMDB and not the sqlite log: a contact reservation must be exact across the replica
processes of a machine, and it sits on the request's path. In sqlite it would be a
``BEGIN IMMEDIATE`` transaction, so every request that contacts a customer would wait for
the background committer (a thread hand-off, several statements, the GIL handed back and
forth). An LMDB write transaction takes LMDB's one writer lock across processes briefly,
all in C, so the request reserves inline and waits for no thread; the decision log stays
in sqlite, written in groups (docs/benchmarks.md, "One customer a call: the contact
ledger").

Each value is ``cap`` float64 slots of contact times (0: empty). A reservation reads the
rows asked, counts the times inside the window, grants while fewer than ``cap``, and
writes each granted customer's slots back with the oldest dead slots replaced by now,
all in one write transaction. The environment is opened without ``fsync``: a process
crash (kill -9) loses nothing that committed (the pages are in the OS's cache); an
operating-system crash may lose the last contacts, which errs towards more contacts for
those customers, never towards a lost decision.
"""

from __future__ import annotations

import itertools
import struct
import threading
from pathlib import Path
from typing import Any

import numpy as np

from serving.bandit.state.base import Reservation, group_positions
from serving.errors import DependencyUnavailable

_SWEEP_CHUNK = 2_000  # keys judged per call: a short hold of the GIL, then the trim yields it
# LMDB forbids opening one environment twice in a process (closing either drops the other's
# locks): one per path, for the process's life, as the feature store does
_ENVS: dict[str, Any] = {}
_ENVS_LOCK = threading.Lock()


def _open(path: Path, map_size_mb: int) -> Any:
    import lmdb

    key = str(path.resolve())
    with _ENVS_LOCK:
        if key not in _ENVS:
            path.mkdir(parents=True, exist_ok=True)
            # sync off: a commit reaches the OS page cache, not the disk (see the module docstring)
            _ENVS[key] = lmdb.open(
                key,
                map_size=map_size_mb << 20,
                sync=False,
                metasync=False,
                max_readers=1024,
                readahead=False,
            )
        return _ENVS[key]


def _keys(ids: np.ndarray) -> list[bytes]:
    """Big-endian int64 keys: LMDB orders them numerically, so a sweep can resume by key."""
    raw = ids.astype(">i8").tobytes()
    return [raw[i : i + 8] for i in range(0, len(raw), 8)]


def _slots(values: list[bytes | None], width: int) -> np.ndarray:
    """(n, width) contact times; a value written under another cap keeps its newest times."""
    zero = bytes(8 * width)
    if all(v is None or len(v) == 8 * width for v in values):
        return (
            np.frombuffer(b"".join(v or zero for v in values), "<f8")
            .reshape(len(values), width)
            .copy()
        )
    out = np.zeros((len(values), width))
    for i, v in enumerate(values):  # only after a change of contact_cap, once per customer
        if v:
            t = np.sort(np.frombuffer(v, "<f8"))[-width:]
            out[i, width - len(t) :] = t
    return out


def _newest(values: list[bytes]) -> np.ndarray:
    """The newest contact time of each value (0.0 for none), through ``_slots``: one numpy
    call when the values share a width, as they do unless ``contact_cap`` changed."""
    width = max((len(v) for v in values), default=0) // 8
    return _slots(list(values), width).max(axis=1, initial=0.0)


def _reserve_one(txn: Any, key: bytes, now: float, window_s: float, cap: int) -> bool:
    """``ContactLedger.reserve`` of one customer inside its write transaction, in Python
    floats: the same slots written (dead and empty ones first, the first set to now)."""
    raw = txn.get(key)
    times = (
        struct.unpack(f"<{cap}d", raw)
        if raw is not None and len(raw) == 8 * cap
        else _slots([raw], cap)[0].tolist()
    )
    live = sorted(t for t in times if t > 0 and t > now - window_s)
    if len(live) >= cap:
        return False
    txn.put(key, struct.pack(f"<{cap}d", now, *([0.0] * (cap - 1 - len(live))), *live))
    return True


class ContactLedger:
    """Contact times per customer, shared by the processes of one machine."""

    def __init__(self, path: Path, *, map_size_mb: int = 2048) -> None:
        import lmdb

        self._lmdb: Any = lmdb
        self.path = Path(path)
        self.env = _open(self.path, map_size_mb)
        self._sweep_from = b""

    def reserve(self, res: Reservation) -> np.ndarray:
        """Allowed mask over ``res.rows``, recorded atomically across processes."""
        ids, width = res.customer_ids, res.cap
        keys = _keys(ids)
        try:
            with self.env.begin(write=True) as txn:
                if len(keys) == 1:  # a single customer: the same rule in scalars
                    return np.array([_reserve_one(txn, keys[0], res.now, res.window_s, width)])
                t = _slots([txn.get(k) for k in keys], width)
                live = (t > 0) & (t > res.now - res.window_s)  # 0: an empty slot
                dupes = len(ids) > 1 and len(np.unique(ids)) < len(ids)
                allowed = live.sum(axis=1) + (group_positions(ids) if dupes else 0) < res.cap
                # one write per customer granted: its first row carries its slots, and grants
                first, grants = self._grants(ids, allowed, dupes)
                slots = np.sort(np.where(live, t, 0.0)[first], axis=1)  # dead and empty slots first
                slots[np.arange(width)[None, :] < grants[:, None]] = res.now
                for i, row in zip(first.tolist(), slots):
                    txn.put(keys[i], row.tobytes())
        except self._lmdb.Error as exc:
            raise DependencyUnavailable(
                f"bandit contact ledger (lmdb) is unavailable: {exc}"
            ) from None
        return allowed

    @staticmethod
    def _grants(ids: np.ndarray, allowed: np.ndarray, dupes: bool) -> tuple[np.ndarray, np.ndarray]:
        """(rows to write, contacts granted there): one row per customer granted at least once."""
        if not dupes:
            rows = np.flatnonzero(allowed)
            return rows, np.ones(len(rows), np.int64)
        _, first, inverse = np.unique(ids, return_index=True, return_inverse=True)
        grants = np.bincount(inverse, weights=allowed, minlength=len(first)).astype(np.int64)
        keep = grants > 0
        return first[keep], grants[keep]

    def forget(self, customer_id: int) -> int:
        """Drop one customer's contact times (an erasure); 1 if there were any."""
        with self.env.begin(write=True) as txn:
            return int(bool(txn.delete(_keys(np.array([customer_id], np.int64))[0])))

    def sweep(self, dead_before: float, limit: int = _SWEEP_CHUNK) -> tuple[int, bool]:
        """Delete up to ``limit`` customers whose every contact is older than ``dead_before``,
        resuming where the last call stopped; (deleted, reached the end).

        Why two steps: the chunk is read in a read transaction, which takes no lock, and
        judged in one numpy call; only the customers found dead are then deleted, under the
        writer lock, each checked again there (a reservation made in between keeps its
        customer). Judging every key in Python under the writer lock would hold the GIL and
        the lock for the whole ledger while every replica's reservations wait
        (docs/benchmarks.md, "Single customers: what moved")."""
        with self.env.begin() as txn:
            cur = txn.cursor()
            start = cur.set_range(self._sweep_from) if self._sweep_from else cur.first()
            items = list(itertools.islice(cur.iternext(), limit + 1)) if start else []
        more = len(items) > limit
        self._sweep_from = items.pop()[0] if more else b""
        newest = _newest([v for _, v in items])
        dead = [k for (k, _), t in zip(items, newest.tolist()) if t <= dead_before]
        deleted = 0
        if dead:
            with self.env.begin(write=True) as txn:
                for key in dead:
                    raw = txn.get(key)
                    if raw is not None and _newest([raw])[0] <= dead_before:
                        txn.delete(key)
                        deleted += 1
        return deleted, not more

    def counts(self) -> dict[int, int]:
        """Recorded contacts per customer (tests, operators): slots holding a time."""
        with self.env.begin() as txn:
            return {
                int.from_bytes(k, "big", signed=True): int((np.frombuffer(v, "<f8") > 0).sum())
                for k, v in txn.cursor()
            }

    def used_bytes(self) -> int:
        info, stat = self.env.info(), self.env.stat()
        return int((info["last_pgno"] + 1) * stat["psize"])

    def close(self) -> None:
        """Nothing to release: the environment stays open for the process (see ``_open``)."""
