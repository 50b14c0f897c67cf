"""Shared bandit state and the durable decision log: an embedded (sqlite) and a Redis backend.

Both hold the same things, so a replica restart loses nothing and every replica learns
from every reward:
- the policy statistics, one float64 blob per state key, updated atomically
  (``stats = discount * stats + increment`` in one transaction / one Lua script), with a
  version counter replicas poll cheaply;
- one decision-log record per ``decide`` batch (arrays, not rows), with a pending copy
  of what a reward needs (arm, reason, context) that lives for the reward window;
- rewards, recorded once per decision id (the second is a conflict);
- contact-cap counters per customer, checked and recorded atomically.

sqlite runs in WAL mode so several replica processes on one machine share one file.
"""

from __future__ import annotations

import io
import json
import sqlite3
import struct
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from serving.errors import DependencyUnavailable

REASONS = ("policy", "holdout", "contact_cap", "not_found")
POLICY, HOLDOUT, CONTACT_CAP, NOT_FOUND = range(4)
OK, MISSING, CONFLICT = 1, 0, -1  # record_rewards status per row


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

    @property
    def n(self) -> int:
        return int(len(self.customer_ids))

    @property
    def dim(self) -> int:
        return int(self.context.shape[1])


@dataclass
class Pending:
    """What a reward needs from its decision, for a set of (batch, row) pairs."""

    found: np.ndarray  # (n,) bool: decision exists (any age)
    t: np.ndarray  # (n,) decision time
    arm: np.ndarray  # (n,) int
    reason: np.ndarray  # (n,) uint8
    context: np.ndarray  # (n, d) float32
    dim_ok: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))  # context width matches


class Backend(Protocol):
    def read_state(self, key: str, shape: tuple[int, int]) -> tuple[int, np.ndarray]: ...
    def state_version(self, key: str) -> int: ...
    def log_batch(self, rec: BatchRecord, ttl_s: float) -> None: ...
    def reserve_contacts(self, customer_ids: np.ndarray, now: float, window_s: float, cap: int) -> np.ndarray: ...
    def pending(self, batch_ids: list[str], rows: np.ndarray, dim: int) -> Pending: ...
    def record_rewards(self, key: str, batch_ids: list[str], rows: np.ndarray, rewards: np.ndarray, now: float,
                       inc: np.ndarray, arms: np.ndarray, update: np.ndarray, discount: float,
                       shape: tuple[int, int]) -> np.ndarray: ...
    def read_log(self, since: float | None = None) -> tuple[list[BatchRecord], dict[tuple[str, int], float]]: ...
    def close(self) -> None: ...


def _npy(a: np.ndarray | None) -> bytes | None:
    if a is None:
        return None
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(a), allow_pickle=False)
    return buf.getvalue()


def _from_npy(b: bytes | None) -> np.ndarray | None:
    return None if b is None or len(b) == 0 else np.load(io.BytesIO(b), allow_pickle=False)


def _meta_rows(arm_index: np.ndarray, reason: np.ndarray) -> bytes:
    """4 bytes per row (int16 arm, uint8 reason, pad) so one row is one GETRANGE."""
    m = np.zeros(len(arm_index), dtype=[("arm", "<i2"), ("reason", "u1"), ("pad", "u1")])
    m["arm"], m["reason"] = arm_index, reason
    return m.tobytes()


def _parse_meta(raw: bytes) -> tuple[np.ndarray, np.ndarray]:
    m = np.frombuffer(raw, dtype=[("arm", "<i2"), ("reason", "u1"), ("pad", "u1")])
    return m["arm"].astype(np.int64), m["reason"].copy()


def _discount_weights(n: int, discount: float) -> np.ndarray:
    """Row i of n sequential updates is discounted n-1-i times by the later ones."""
    return discount ** np.arange(n - 1, -1, -1, dtype=np.float64) if discount < 1 else np.ones(n)


def group_positions(customer_ids: np.ndarray) -> np.ndarray:
    """(n,) occurrence index of each id among earlier equal ids (0 for the first), vectorized."""
    order = np.argsort(customer_ids, kind="stable")
    s = customer_ids[order]
    start = np.r_[True, s[1:] != s[:-1]]
    idx = np.arange(len(s))
    first = np.maximum.accumulate(np.where(start, idx, 0))
    out = np.empty(len(s), dtype=np.int64)
    out[order] = idx - first
    return out


# ---------------------------------------------------------------------------------- sqlite

_SCHEMA = """
CREATE TABLE IF NOT EXISTS batches(
  batch_id TEXT PRIMARY KEY, t REAL NOT NULL, n INTEGER NOT NULL, d INTEGER NOT NULL,
  policy TEXT, policy_version TEXT, model_versions TEXT, arms TEXT, context_names TEXT,
  customer_ids BLOB, context BLOB, meta BLOB, propensity BLOB, feature_digest BLOB, feature_ts BLOB);
CREATE INDEX IF NOT EXISTS batches_t ON batches(t);
CREATE TABLE IF NOT EXISTS rewards(
  batch_id TEXT NOT NULL, row INTEGER NOT NULL, reward REAL NOT NULL, t REAL NOT NULL,
  PRIMARY KEY(batch_id, row)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS state(key TEXT PRIMARY KEY, version INTEGER NOT NULL, stats BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS contacts(customer_id INTEGER NOT NULL, t REAL NOT NULL);
CREATE INDEX IF NOT EXISTS contacts_ct ON contacts(customer_id, t);
"""


class SqliteBackend:
    """Embedded default: one sqlite file per router name, WAL mode, shared by processes."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, timeout=5, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self._last_prune = 0.0

    def _write(self) -> "_Tx":
        return _Tx(self._db, self._lock)

    def read_state(self, key: str, shape: tuple[int, int]) -> tuple[int, np.ndarray]:
        with self._lock:
            row = self._db.execute("SELECT version, stats FROM state WHERE key=?", (key,)).fetchone()
        if row is None:
            return 0, np.zeros(shape)
        return int(row[0]), np.frombuffer(row[1], dtype="<f8").reshape(shape).copy()

    def state_version(self, key: str) -> int:
        with self._lock:
            row = self._db.execute("SELECT version FROM state WHERE key=?", (key,)).fetchone()
        return 0 if row is None else int(row[0])

    def log_batch(self, rec: BatchRecord, ttl_s: float) -> None:
        with self._write() as db:
            db.execute(
                "INSERT INTO batches VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (rec.batch_id, rec.t, rec.n, rec.dim, rec.policy, rec.policy_version,
                 json.dumps(rec.model_versions), json.dumps(list(rec.arms)), json.dumps(list(rec.context_names)),
                 rec.customer_ids.astype("<i8").tobytes(), rec.context.astype("<f4").tobytes(),
                 _meta_rows(rec.arm_index, rec.reason), rec.propensity.astype("<f8").tobytes(),
                 _npy(rec.feature_digest), _npy(rec.feature_ts)),
            )

    def reserve_contacts(self, customer_ids: np.ndarray, now: float, window_s: float, cap: int) -> np.ndarray:
        ids = np.asarray(customer_ids, dtype=np.int64)
        if len(ids) == 0:
            return np.zeros(0, bool)
        uniq = np.unique(ids)
        with self._write() as db:
            rows = db.execute(
                "SELECT customer_id, COUNT(*) FROM contacts WHERE t > ? AND customer_id IN "
                "(SELECT value FROM json_each(?)) GROUP BY customer_id",
                (now - window_s, json.dumps(uniq.tolist())),
            ).fetchall()
            prior = np.zeros(len(ids), dtype=np.int64)
            if rows:
                got = np.array(rows, dtype=np.int64)
                pos = np.searchsorted(got[:, 0], ids)
                hit = (pos < len(got)) & (got[np.minimum(pos, len(got) - 1), 0] == ids)
                prior[hit] = got[pos[hit], 1]
            allowed = prior + group_positions(ids) < cap
            db.execute("INSERT INTO contacts SELECT value, ? FROM json_each(?)",
                       (now, json.dumps(ids[allowed].tolist())))
            if now - self._last_prune > 60:
                db.execute("DELETE FROM contacts WHERE t <= ?", (now - window_s,))
                self._last_prune = now
        return allowed

    def pending(self, batch_ids: list[str], rows: np.ndarray, dim: int) -> Pending:
        n = len(batch_ids)
        out = Pending(np.zeros(n, bool), np.full(n, np.nan), np.full(n, -1), np.zeros(n, np.uint8),
                      np.zeros((n, dim), np.float32), np.zeros(n, bool))
        bids = np.asarray(batch_ids, dtype=object)
        for bid in set(batch_ids):  # one query per distinct batch, typically one
            with self._lock:
                r = self._db.execute("SELECT t, n, d, meta, context FROM batches WHERE batch_id=?", (bid,)).fetchone()
            if r is None:
                continue
            sel = np.flatnonzero((bids == bid) & (rows < r[1]) & (rows >= 0))
            arm, reason = _parse_meta(r[3])
            out.found[sel], out.t[sel] = True, r[0]
            out.arm[sel], out.reason[sel] = arm[rows[sel]], reason[rows[sel]]
            if r[2] == dim:
                out.context[sel] = np.frombuffer(r[4], dtype="<f4").reshape(r[1], r[2])[rows[sel]]
                out.dim_ok[sel] = True
        return out

    def record_rewards(self, key: str, batch_ids: list[str], rows: np.ndarray, rewards: np.ndarray, now: float,
                       inc: np.ndarray, arms: np.ndarray, update: np.ndarray, discount: float,
                       shape: tuple[int, int]) -> np.ndarray:
        status = np.full(len(batch_ids), OK, dtype=np.int8)
        with self._write() as db:
            seen: set[tuple[str, int]] = set()
            pairs = list(zip(batch_ids, rows.tolist()))
            bids = np.asarray(batch_ids, dtype=object)
            for bid in set(batch_ids):  # only the rows asked about: O(rewards given), not O(batch)
                asked = json.dumps(rows[bids == bid].tolist())
                seen.update((bid, int(r)) for (r,) in db.execute(
                    "SELECT row FROM rewards WHERE batch_id=? AND row IN (SELECT value FROM json_each(?))",
                    (bid, asked)))
            for i, pair in enumerate(pairs):  # marks duplicates inside this call as conflicts too
                if pair in seen:
                    status[i] = CONFLICT
                seen.add(pair)
            ok = status == OK
            db.executemany("INSERT INTO rewards VALUES (?,?,?,?)",
                           [(b, r, float(v), now) for (b, r), v, k in zip(pairs, rewards.tolist(), ok) if k])
            use = ok & update
            if use.any():
                self._apply(db, key, shape, inc[use], arms[use], discount)
        return status

    def _apply(self, db: sqlite3.Connection, key: str, shape: tuple[int, int], inc: np.ndarray,
               arms: np.ndarray, discount: float) -> None:
        row = db.execute("SELECT version, stats FROM state WHERE key=?", (key,)).fetchone()
        stats = np.zeros(shape) if row is None else np.frombuffer(row[1], dtype="<f8").reshape(shape).copy()
        stats = _updated(stats, inc, arms, discount)
        db.execute("INSERT INTO state VALUES (?, 1, ?) ON CONFLICT(key) DO UPDATE SET "
                   "version = version + 1, stats = excluded.stats", (key, stats.astype("<f8").tobytes()))

    def read_log(self, since: float | None = None) -> tuple[list[BatchRecord], dict[tuple[str, int], float]]:
        with self._lock:
            rows = self._db.execute("SELECT * FROM batches WHERE t >= ? ORDER BY t", (since or -np.inf,)).fetchall()
            rewards = self._db.execute("SELECT batch_id, row, reward FROM rewards").fetchall()
        recs = [_record_from_sql(r) for r in rows]
        return recs, {(b, int(r)): float(v) for b, r, v in rewards}

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _updated(stats: np.ndarray, inc: np.ndarray, arms: np.ndarray, discount: float) -> np.ndarray:
    """Sequential discounted updates in one step: d^n * stats + sum_i d^(n-1-i) inc_i."""
    w = _discount_weights(len(inc), discount)
    out = stats * (discount ** len(inc))
    np.add.at(out, arms.astype(np.int64), inc * w[:, None])
    return out


def _record_from_sql(r: tuple[Any, ...]) -> BatchRecord:
    (bid, t, n, d, policy, pv, mv, arms, names, cids, ctx, meta, prop, digest, fts) = r
    arm, reason = _parse_meta(meta)
    return BatchRecord(bid, t, policy, pv, json.loads(mv), tuple(json.loads(arms)), tuple(json.loads(names)),
                       np.frombuffer(cids, "<i8").copy(), np.frombuffer(ctx, "<f4").reshape(n, d).copy(),
                       arm.astype(np.int16), np.frombuffer(prop, "<f8").copy(), reason,
                       _from_npy(digest), _from_npy(fts))


class _Tx:
    """BEGIN IMMEDIATE ... COMMIT under the connection lock: one writer at a time across processes."""

    def __init__(self, db: sqlite3.Connection, lock: threading.Lock) -> None:
        self.db, self.lock = db, lock

    def __enter__(self) -> sqlite3.Connection:
        self.lock.acquire()
        try:
            self.db.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            self.lock.release()
            raise DependencyUnavailable(f"bandit state (sqlite) is locked: {exc}") from None
        return self.db

    def __exit__(self, exc_type: Any, *_: Any) -> None:
        try:
            self.db.execute("ROLLBACK" if exc_type else "COMMIT")
        finally:
            self.lock.release()


# ----------------------------------------------------------------------------------- Redis

# Shared head of both reward scripts: the decision is still pending and not yet rewarded
# (HSETNX: once only), the reward joins the log stream; ``inc`` empty: nothing to learn.
_REWARD_ONCE = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if redis.call('HSETNX', KEYS[2], ARGV[1], ARGV[2]) == 0 then return -1 end
local ttl = redis.call('PTTL', KEYS[1])
if ttl > 0 then redis.call('PEXPIRE', KEYS[2], ttl) end
redis.call('XADD', KEYS[3], '*', 'id', ARGV[4], 'reward', ARGV[2], 't', ARGV[3])
local inc = ARGV[7]
if #inc == 0 then return 1 end
"""

# Atomic reward: decision still pending, reward not yet given, then log it and update the
# policy statistics (stats = discount * stats + inc on the arm's slice) in the same script.
_REWARD_LUA = _REWARD_ONCE + """
local gamma, off, total = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[8])
local cur = redis.call('GET', KEYS[4])
if (not cur) or (#cur ~= total) then cur = string.rep(string.char(0), total) end
local parts = {}
local lo, hi = off, off + #inc
local i = 0
while i < total do
  local v = struct.unpack('<d', cur, i + 1) * gamma
  if i >= lo and i < hi then v = v + struct.unpack('<d', inc, i - lo + 1) end
  parts[#parts + 1] = struct.pack('<d', v)
  i = i + 8
end
redis.call('SET', KEYS[4], table.concat(parts))
redis.call('INCR', KEYS[5])
return 1
"""

_REWARD_LUA_NODISCOUNT = _REWARD_ONCE + """
local off, total = tonumber(ARGV[6]), tonumber(ARGV[8])
if redis.call('STRLEN', KEYS[4]) ~= total then redis.call('SET', KEYS[4], string.rep(string.char(0), total)) end
local cur = redis.call('GETRANGE', KEYS[4], off, off + #inc - 1)
local parts = {}
local i = 0
while i < #inc do
  parts[#parts + 1] = struct.pack('<d', struct.unpack('<d', cur, i + 1) + struct.unpack('<d', inc, i + 1))
  i = i + 8
end
redis.call('SETRANGE', KEYS[4], off, table.concat(parts))
redis.call('INCR', KEYS[5])
return 1
"""

# Contact caps: per customer the decision times inside the window; allow while fewer than cap.
_CAP_LUA = """
local now, window, cap, prefix = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
local px = math.ceil(window * 1000)
local out = {}
for j = 5, #ARGV do
  local key = prefix .. ARGV[j]
  local v = redis.call('GET', key)
  local kept = {}
  if v then
    for t in string.gmatch(v, '[^,]+') do
      if tonumber(t) > now - window then kept[#kept + 1] = t end
    end
  end
  if #kept < cap then
    kept[#kept + 1] = ARGV[1]
    redis.call('SET', key, table.concat(kept, ','), 'PX', px)
    out[#out + 1] = 1
  else
    out[#out + 1] = 0
  end
end
return out
"""

_HEADER = struct.Struct("<dii")  # decision time, rows, context width


class RedisBackend:
    """Production backend: state blob + version, pending keys with TTL, log and rewards streams."""

    def __init__(self, url: str, name: str, *, log_maxlen: int | None = None) -> None:
        import redis

        self._redis_mod = redis
        self.r = redis.Redis.from_url(url)
        self.prefix = "{reengage:bandit:" + name + "}"  # one hash slot: scripts touch several keys
        self.log_key, self.rewards_key = self.prefix + ":log", self.prefix + ":rewards"
        self.log_maxlen = log_maxlen
        self._reward = self.r.register_script(_REWARD_LUA)
        self._reward_nd = self.r.register_script(_REWARD_LUA_NODISCOUNT)
        self._cap = self.r.register_script(_CAP_LUA)

    def _call(self, fn: Any, *args: Any, **kw: Any) -> Any:
        try:
            return fn(*args, **kw)
        except (self._redis_mod.ConnectionError, self._redis_mod.TimeoutError) as exc:
            raise DependencyUnavailable(f"bandit state (redis) is unavailable: {exc}") from None

    def _pkeys(self, bid: str) -> tuple[str, str, str]:
        p = f"{self.prefix}:p:{bid}"
        return p + ":m", p + ":x", p + ":r"

    def read_state(self, key: str, shape: tuple[int, int]) -> tuple[int, np.ndarray]:
        blob, ver = self._call(lambda: self.r.pipeline(transaction=True).get(self.prefix + key)
                               .get(self.prefix + key + ":v").execute())
        size = shape[0] * shape[1] * 8
        if not blob or len(blob) != size:
            return int(ver or 0), np.zeros(shape)
        return int(ver or 0), np.frombuffer(blob, "<f8").reshape(shape).copy()

    def state_version(self, key: str) -> int:
        return int(self._call(self.r.get, self.prefix + key + ":v") or 0)

    def log_batch(self, rec: BatchRecord, ttl_s: float) -> None:
        m, x, _ = self._pkeys(rec.batch_id)
        px = int(ttl_s * 1000)
        meta = _meta_rows(rec.arm_index, rec.reason)
        fields: dict[str, Any] = {
            "batch_id": rec.batch_id, "t": repr(rec.t), "n": rec.n, "d": rec.dim, "policy": rec.policy,
            "policy_version": rec.policy_version, "model_versions": json.dumps(rec.model_versions),
            "arms": json.dumps(list(rec.arms)), "context_names": json.dumps(list(rec.context_names)),
            "customer_ids": rec.customer_ids.astype("<i8").tobytes(), "context": rec.context.astype("<f4").tobytes(),
            "meta": meta, "propensity": rec.propensity.astype("<f8").tobytes(),
        }
        if rec.feature_digest is not None:
            fields["feature_digest"] = _npy(rec.feature_digest)
        if rec.feature_ts is not None:
            fields["feature_ts"] = _npy(rec.feature_ts)
        pipe = self.r.pipeline(transaction=True)
        pipe.set(m, _HEADER.pack(rec.t, rec.n, rec.dim) + meta, px=px)
        pipe.set(x, fields["context"], px=px)
        pipe.xadd(self.log_key, fields, maxlen=self.log_maxlen, approximate=True)
        self._call(pipe.execute)

    def reserve_contacts(self, customer_ids: np.ndarray, now: float, window_s: float, cap: int) -> np.ndarray:
        ids = np.asarray(customer_ids, dtype=np.int64)
        if len(ids) == 0:
            return np.zeros(0, bool)
        res = self._call(self._cap, keys=[self.prefix + ":cap"],
                         args=[repr(float(now)), repr(float(window_s)), cap, self.prefix + ":cap:", *ids.tolist()])
        return np.asarray(res, dtype=bool)

    def pending(self, batch_ids: list[str], rows: np.ndarray, dim: int) -> Pending:
        n = len(batch_ids)
        pipe = self.r.pipeline(transaction=False)
        for bid, row in zip(batch_ids, rows.tolist()):
            m, x, _ = self._pkeys(bid)
            pipe.getrange(m, 0, _HEADER.size - 1)
            pipe.getrange(m, _HEADER.size + 4 * row, _HEADER.size + 4 * row + 3)
            pipe.getrange(x, 4 * dim * row, 4 * dim * (row + 1) - 1)
        res = self._call(pipe.execute)
        out = Pending(np.zeros(n, bool), np.full(n, np.nan), np.full(n, -1), np.zeros(n, np.uint8),
                      np.zeros((n, dim), np.float32), np.zeros(n, bool))
        for i in range(n):  # feedback path: one decoded row per reward, not the decision hot path
            head, meta, ctx = res[3 * i : 3 * i + 3]
            if len(head) != _HEADER.size or len(meta) != 4 or rows[i] < 0:
                continue
            t, rows_n, d = _HEADER.unpack(head)
            arm, reason = _parse_meta(meta)
            out.found[i], out.t[i], out.arm[i], out.reason[i] = True, t, arm[0], reason[0]
            if d == dim and len(ctx) == 4 * dim:
                out.context[i] = np.frombuffer(ctx, "<f4")
                out.dim_ok[i] = True
        return out

    def record_rewards(self, key: str, batch_ids: list[str], rows: np.ndarray, rewards: np.ndarray, now: float,
                       inc: np.ndarray, arms: np.ndarray, update: np.ndarray, discount: float,
                       shape: tuple[int, int]) -> np.ndarray:
        script = self._reward if discount < 1 else self._reward_nd
        width = shape[1] * 8
        pipe = self.r.pipeline(transaction=False)
        for i, (bid, row) in enumerate(zip(batch_ids, rows.tolist())):
            m, _, rk = self._pkeys(bid)
            blob = inc[i].astype("<f8").tobytes() if update[i] else b""
            script(keys=[m, rk, self.rewards_key, self.prefix + key, self.prefix + key + ":v"],
                   args=[row, repr(float(rewards[i])), repr(float(now)), f"{bid}-{row}", repr(float(discount)),
                         int(arms[i]) * width if update[i] else 0, blob, shape[0] * width], client=pipe)
        return np.asarray(self._call(pipe.execute), dtype=np.int8)

    def read_log(self, since: float | None = None) -> tuple[list[BatchRecord], dict[tuple[str, int], float]]:
        recs = [_record_from_stream(f) for f in self._stream(self.log_key)]
        recs = [r for r in recs if since is None or r.t >= since]
        rewards: dict[tuple[str, int], float] = {}
        for f in self._stream(self.rewards_key):
            bid, _, row = f[b"id"].decode().rpartition("-")
            rewards.setdefault((bid, int(row)), float(f[b"reward"]))
        return recs, rewards

    def _stream(self, key: str, page: int = 200) -> Any:
        start = "-"
        while True:
            chunk = self._call(self.r.xrange, key, start, "+", count=page)
            for entry_id, fields in chunk:
                yield fields
            if len(chunk) < page:
                return
            start = "(" + chunk[-1][0].decode()

    def drop(self) -> int:
        """Delete every key of this router name (benchmarks, tests); returns how many."""
        keys = list(self.r.scan_iter(match=self.prefix + "*", count=1000))
        return int(self.r.delete(*keys)) if keys else 0

    def close(self) -> None:
        self.r.close()


def _record_from_stream(f: dict[bytes, bytes]) -> BatchRecord:
    n, d = int(f[b"n"]), int(f[b"d"])
    arm, reason = _parse_meta(f[b"meta"])
    return BatchRecord(
        f[b"batch_id"].decode(), float(f[b"t"]), f[b"policy"].decode(), f[b"policy_version"].decode(),
        json.loads(f[b"model_versions"]), tuple(json.loads(f[b"arms"])), tuple(json.loads(f[b"context_names"])),
        np.frombuffer(f[b"customer_ids"], "<i8").copy(), np.frombuffer(f[b"context"], "<f4").reshape(n, d).copy(),
        arm.astype(np.int16), np.frombuffer(f[b"propensity"], "<f8").copy(), reason,
        _from_npy(f.get(b"feature_digest")), _from_npy(f.get(b"feature_ts")),
    )


def open_backend(settings: Any) -> Backend:
    """The backend a ``BanditSettings`` names (embedded file under ``state_path``, or Redis)."""
    if settings.backend == "redis":
        return RedisBackend(settings.redis_url, settings.name)
    root = Path(settings.state_path) if settings.state_path is not None else Path.cwd() / "data" / "bandit"
    return SqliteBackend(root / f"{settings.name}.sqlite")
