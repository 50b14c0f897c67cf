"""The embedded store: one sqlite file per router name for the decision log, rewards and
statistics, and an LMDB contact ledger beside it, both shared by the replica processes of
one machine (sqlite in WAL mode: readers never wait for the writer).

Every sqlite write is one ``BEGIN IMMEDIATE`` transaction, which takes sqlite's single
write lock across processes; that lock makes a reward (once-only check, then the
statistics update) exact across replicas. Contact reservations take LMDB's writer lock
instead, inline on the request's path (``reserve_now``; see ``ledger``).
"""

from __future__ import annotations

import functools
import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from serving.bandit.state.base import (
    Cursor,
    Group,
    Reservation,
    Retention,
    RewardRow,
    RewardUpdate,
    Trimmed,
    discounted_update,
)
from serving.bandit.state.ledger import ContactLedger
from serving.bandit.state.records import (
    BatchRecord,
    Pending,
    RewardStatus,
    decode_record,
    encode_record,
    erased_rows,
    tombstone,
)
from serving.errors import DependencyUnavailable

_SCHEMA = """
CREATE TABLE IF NOT EXISTS batches(
  batch_id TEXT PRIMARY KEY, t REAL NOT NULL, n INTEGER NOT NULL, d INTEGER NOT NULL,
  policy TEXT, policy_version TEXT, model_versions TEXT, arms TEXT, context_names TEXT,
  customer_ids BLOB, context BLOB, meta BLOB, propensity BLOB, feature_digest BLOB,
  feature_ts BLOB);
CREATE INDEX IF NOT EXISTS batches_t ON batches(t);
CREATE TABLE IF NOT EXISTS rewards(
  batch_id TEXT NOT NULL, row INTEGER NOT NULL, reward REAL NOT NULL, t REAL NOT NULL,
  PRIMARY KEY(batch_id, row)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS rewards_t ON rewards(t);
CREATE TABLE IF NOT EXISTS state(
  key TEXT PRIMARY KEY, version INTEGER NOT NULL, stats BLOB NOT NULL);
"""

REWARD_OVERLAP_S = (
    15.0  # read_since re-reads this much of the reward index (commits out of time order:
)
# a reward is stamped before its transaction waits for the lock, up to the 5 s busy timeout)

_COLUMNS = (
    "batch_id",
    "t",
    "n",
    "d",
    "policy",
    "policy_version",
    "model_versions",
    "arms",
    "context_names",
    "customer_ids",
    "context",
    "meta",
    "propensity",
    "feature_digest",
    "feature_ts",
)


@functools.lru_cache(maxsize=8)
def _insert_batches(rows: int) -> str:
    """A multi-row INSERT: one statement for a whole chunk of records. OR IGNORE: a group
    retried after an unclear failure must not fail on its own first copy."""
    one = "(" + ", ".join("?" * len(_COLUMNS)) + ")"
    return "INSERT OR IGNORE INTO batches VALUES " + ", ".join([one] * rows)


class SqliteStore:
    """Embedded default. Two connections, each used under its own lock by any thread: the
    writer's, and a reader's, so a reward lookup never queues behind a write waiting for
    another process's lock (in WAL mode readers do not wait for writers)."""

    def __init__(self, path: Path, *, busy_timeout_s: float = 5.0) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock, self._read_lock = threading.Lock(), threading.Lock()
        self._db = self._connect(busy_timeout_s)
        # pages freed by trim go back to the file system (takes effect on a new, empty file only)
        self._db.execute("PRAGMA auto_vacuum=INCREMENTAL")
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)
        self._reader = self._connect(busy_timeout_s)
        self.ledger = ContactLedger(self.path.with_suffix(".contacts"))

    def _connect(self, busy_timeout_s: float) -> sqlite3.Connection:
        db = sqlite3.connect(
            self.path, timeout=busy_timeout_s, isolation_level=None, check_same_thread=False
        )
        db.execute("PRAGMA synchronous=NORMAL")
        return db

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE ... COMMIT under the connection lock: one writer across processes.
        A lock wait past the busy timeout or an I/O error is the state being unavailable."""
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                yield self._db
                self._db.execute("COMMIT")
            except sqlite3.OperationalError as exc:
                self._rollback()
                raise DependencyUnavailable(
                    f"bandit state (sqlite) is unavailable: {exc}"
                ) from None
            except BaseException:
                self._rollback()
                raise

    def _rollback(self) -> None:
        if self._db.in_transaction:
            self._db.execute("ROLLBACK")

    def _read(self, sql: str, args: tuple[object, ...]) -> list[Any]:
        with self._read_lock:
            return self._reader.execute(sql, args).fetchall()

    # ------------------------------------------------------------------ statistics
    def read_state(self, key: str, shape: tuple[int, int]) -> tuple[int, np.ndarray]:
        rows = self._read("SELECT version, stats FROM state WHERE key=?", (key,))
        if not rows:
            return 0, np.zeros(shape)
        version, blob = rows[0]
        return int(version), np.frombuffer(blob, dtype="<f8").reshape(shape).copy()

    def state_version(self, key: str) -> int:
        rows = self._read("SELECT version FROM state WHERE key=?", (key,))
        return int(rows[0][0]) if rows else 0

    # ------------------------------------------------------------------ decisions
    def commit(self, group: Group) -> None:
        """Every reservation, then every record, in one transaction of a handful of statements,
        whatever the group's size: each statement hands the GIL to the event loop and waits up
        to a switch interval (5 ms) to get it back, so statements per row would stall the writer."""
        for res in group.reservations:  # callers that hand reservations to the committer
            self.reserve_now(res)
        with self._write() as db:
            limit = max(1, db.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) // len(_COLUMNS))
            for lo in range(0, len(group.records), min(limit, 500)):
                chunk = [encode_record(r) for r in group.records[lo : lo + min(limit, 500)]]
                db.execute(_insert_batches(len(chunk)), [f[c] for f in chunk for c in _COLUMNS])

    def reserve_now(self, res: Reservation) -> None:
        """Check and record one reservation in the ledger and settle its record: exact across
        the machine's processes, a few microseconds, so the request does it inline."""
        res.settle(self.ledger.reserve(res))

    def pending(self, batch_ids: list[str], rows: np.ndarray, dim: int) -> Pending:
        out = Pending.empty(len(batch_ids), dim)
        bids = np.asarray(batch_ids, dtype=object)
        for bid in set(batch_ids):  # one query per distinct batch, typically one
            found = self._read(
                "SELECT t, n, d, meta, context FROM batches WHERE batch_id=?", (bid,)
            )
            if not found:
                continue
            t, n, d, meta, context = found[0]
            sel = np.flatnonzero((bids == bid) & (rows < n) & (rows >= 0))
            out.fill(sel, t, d, meta, context, rows[sel])
        return out

    # ------------------------------------------------------------------ rewards
    def record_rewards(self, upd: RewardUpdate) -> np.ndarray:
        with self._write() as db:
            status = self._once_only(db, upd.batch_ids, upd.rows)
            ok = status == RewardStatus.RECORDED
            pairs = zip(upd.batch_ids, upd.rows.tolist(), upd.rewards.tolist(), ok.tolist())
            db.executemany(
                "INSERT INTO rewards VALUES (?,?,?,?)",
                [(b, r, float(v), upd.now) for b, r, v, k in pairs if k],
            )
            use = ok & upd.update
            if use.any():
                self._learn(db, upd.key, upd.shape, upd.inc[use], upd.arms[use], upd.discount)
        return status

    @staticmethod
    def _once_only(db: sqlite3.Connection, batch_ids: list[str], rows: np.ndarray) -> np.ndarray:
        """ALREADY_REWARDED for pairs rewarded before or earlier in this call, else RECORDED."""
        status = np.full(len(batch_ids), RewardStatus.RECORDED, dtype=np.int8)
        seen: set[tuple[str, int]] = set()
        bids = np.asarray(batch_ids, dtype=object)
        for bid in set(batch_ids):  # only the rows asked about: O(rewards given), not O(batch)
            asked = json.dumps(rows[bids == bid].tolist())
            seen.update(
                (bid, int(r))
                for (r,) in db.execute(
                    "SELECT row FROM rewards "
                    "WHERE batch_id=? AND row IN (SELECT value FROM json_each(?))",
                    (bid, asked),
                )
            )
        for i, pair in enumerate(zip(batch_ids, rows.tolist())):
            if pair in seen:
                status[i] = RewardStatus.ALREADY_REWARDED
            seen.add(pair)
        return status

    @staticmethod
    def _learn(
        db: sqlite3.Connection,
        key: str,
        shape: tuple[int, int],
        inc: np.ndarray,
        arms: np.ndarray,
        discount: float,
    ) -> None:
        row = db.execute("SELECT stats FROM state WHERE key=?", (key,)).fetchone()
        stats = (
            np.zeros(shape) if row is None else np.frombuffer(row[0], dtype="<f8").reshape(shape)
        )
        stats = discounted_update(stats, inc, arms, discount)
        db.execute(
            "INSERT INTO state VALUES (?, 1, ?) ON CONFLICT(key) DO UPDATE SET "
            "version = version + 1, stats = excluded.stats",
            (key, stats.astype("<f8").tobytes()),
        )

    # ------------------------------------------------------------------ log
    def read_log(
        self, since: float | None = None
    ) -> tuple[list[BatchRecord], dict[tuple[str, int], float]]:
        batches = [
            dict(zip(_COLUMNS, r))
            for r in self._read(
                f"SELECT {', '.join(_COLUMNS)} FROM batches WHERE t >= ? ORDER BY t",
                (since if since is not None else -np.inf,),
            )
        ]
        rewards = self._read("SELECT batch_id, row, reward FROM rewards", ())
        return [decode_record(b) for b in batches], {(b, int(r)): float(v) for b, r, v in rewards}

    def read_since(
        self, since: float, cursor: Cursor | None = None
    ) -> tuple[list[BatchRecord], list[RewardRow], Cursor]:
        """What was written after ``cursor`` (None: decided or recorded from ``since``): batches
        in write order (rowid: one writer at a time, so a later rowid is never seen first),
        rewards by their time index, re-read ``REWARD_OVERLAP_S`` back (two processes may
        commit rewards out of time order; the reader drops the repeats). The cost follows
        what is new, not the log."""
        after = int(cursor["rowid"]) if cursor else None
        rows = self._read(
            f"SELECT rowid, {', '.join(_COLUMNS)} FROM batches WHERE "
            + ("rowid > ? ORDER BY rowid" if after is not None else "t >= ? ORDER BY rowid"),
            (after if after is not None else since,),
        )
        reward_from = max(float(cursor["reward_t"]) - REWARD_OVERLAP_S, since) if cursor else since
        rewards = [
            (b, int(r), float(v), float(t))
            for b, r, v, t in self._read(
                "SELECT batch_id, row, reward, t FROM rewards WHERE t >= ?", (reward_from,)
            )
        ]
        out = {
            "rowid": max([r[0] for r in rows], default=after or 0),
            "reward_t": max(
                [r[3] for r in rewards], default=float(cursor["reward_t"]) if cursor else since
            ),
        }
        return [decode_record(dict(zip(_COLUMNS, r[1:]))) for r in rows], rewards, out

    # ------------------------------------------------------------------ erasure
    def erase(self, customer_id: int, pseudonym: int) -> dict[str, int]:
        """Tombstone every logged row of the customer (``records.tombstone``), delete its
        rewards and its contact-ledger entry; counts of what went."""
        targets = np.array([pseudonym, customer_id], dtype=np.int64)
        rows_done = rewards = 0
        with (
            self._read_lock
        ):  # the scan reads (WAL: it never holds up the writers), one blob at a time
            hits = [
                bid
                for bid, blob in self._reader.execute("SELECT batch_id, customer_ids FROM batches")
                if len(erased_rows(blob, targets))
            ]
        with self._write() as db:
            for bid in hits:
                found = db.execute(
                    f"SELECT {', '.join(_COLUMNS)} FROM batches WHERE batch_id=?", (bid,)
                ).fetchone()
                if found is None:  # trimmed since the scan
                    continue
                rows = erased_rows(found[_COLUMNS.index("customer_ids")], targets)
                f = encode_record(tombstone(decode_record(dict(zip(_COLUMNS, found))), rows))
                db.execute(
                    "UPDATE batches SET customer_ids=?, context=?, meta=?, propensity=?, "
                    "feature_digest=?, feature_ts=? WHERE batch_id=?",
                    (
                        f["customer_ids"],
                        f["context"],
                        f["meta"],
                        f["propensity"],
                        f["feature_digest"],
                        f["feature_ts"],
                        bid,
                    ),
                )
                rewards += db.execute(
                    "DELETE FROM rewards "
                    "WHERE batch_id=? AND row IN (SELECT value FROM json_each(?))",
                    (bid, json.dumps(rows.tolist())),
                ).rowcount
                rows_done += len(rows)
        return {
            "decision_rows": rows_done,
            "rewards": rewards,
            "contacts": self.ledger.forget(customer_id),
        }

    # ------------------------------------------------------------------ retention
    def trim(self, retention: Retention) -> Trimmed:
        """By time, then the oldest closed-window batches until the used pages fit
        ``max_bytes``. Freed pages are reused by later writes (and returned to the file
        system where the file was created with incremental auto-vacuum), so the file stays
        near the cap. Rewards go with their batches' time: a reward is never older than its
        decision, so one older than ``before`` belongs to a batch already gone."""
        before = self._used_bytes()
        with self._write() as db:
            gone = db.execute("DELETE FROM batches WHERE t < ?", (retention.before,)).rowcount
            db.execute("DELETE FROM rewards WHERE t < ?", (retention.before,))
        used, over = self._used_bytes(), False
        if retention.max_bytes is not None and used > retention.max_bytes:
            with self._write() as db:
                cutoff = self._size_cutoff(
                    db, 1.0 - retention.max_bytes / used, retention.protect_after
                )
                if cutoff is not None:
                    gone += db.execute("DELETE FROM batches WHERE t <= ?", (cutoff,)).rowcount
                    db.execute("DELETE FROM rewards WHERE t <= ?", (cutoff,))
            used = self._used_bytes()
            over = used > retention.max_bytes
        if gone:
            with self._lock:
                self._db.execute("PRAGMA incremental_vacuum")
        while retention.contacts_before is not None:  # customers with no contact left in the window
            if self.ledger.sweep(retention.contacts_before)[1]:
                break
            time.sleep(0)  # between chunks the event loop's thread takes the GIL at once
        return Trimmed(gone, before, self._used_bytes(), over)

    @staticmethod
    def _size_cutoff(db: sqlite3.Connection, share: float, protect_after: float) -> float | None:
        """Decision time at or below which the oldest ``share`` of closed-window batches lie
        (rows weigh alike: a batch's bytes grow with its rows)."""
        closed, rows = db.execute(
            "SELECT count(*), coalesce(sum(n), 0) FROM batches WHERE t < ?", (protect_after,)
        ).fetchone()
        if not closed:
            return None
        total = db.execute("SELECT coalesce(sum(n), 0) FROM batches").fetchone()[0]
        want = min(rows, max(1, int(np.ceil(total * share))))
        # the running sum of rows, oldest first, reaches `want` at the cutoff batch
        found = db.execute(
            "SELECT t FROM (SELECT t, sum(n) OVER (ORDER BY t, batch_id) AS acc FROM batches "
            "WHERE t < ?) WHERE acc >= ? ORDER BY t LIMIT 1",
            (protect_after, want),
        ).fetchone()
        return float(found[0]) if found else None

    def _used_bytes(self) -> int:
        """Pages in use (free pages excluded): what the log and state really take."""
        with self._read_lock:
            page_size, count, free = (
                self._reader.execute(f"PRAGMA {p}").fetchone()[0]
                for p in ("page_size", "page_count", "freelist_count")
            )
        return int(page_size) * (int(count) - int(free))

    def close(self) -> None:
        with self._lock, self._read_lock:
            self._db.close()
            self._reader.close()
        self.ledger.close()
