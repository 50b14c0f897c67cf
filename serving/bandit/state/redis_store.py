"""The production store: Redis, shared by every replica on every machine.

Keys share one hash slot (``{reengage:bandit:<name>}``) because the scripts touch several.
Per decision batch: a pending header + meta key and a context key, both expiring with
the reward window, and one entry in the log stream. Contact reservations and rewards are
Lua scripts (``lua/*.lua``), so each is atomic across replicas.

Every call has a socket timeout (``bandit.timeout_s``): a hung Redis is a 503 naming the
bandit state within that time, never a stuck thread. A timed-out write may still have
been applied, so the log can hold a batch twice; ``read_log`` keeps the first copy.
"""

from __future__ import annotations

import struct
from importlib import resources
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
)
from serving.bandit.state.records import (
    BatchRecord,
    Pending,
    decode_record,
    encode_record,
    erased_rows,
    tombstone,
)
from serving.errors import DependencyUnavailable

_HEADER = struct.Struct("<dii")  # decision time, rows, context width


def lua(*names: str) -> str:
    """Script text from the package's lua/ folder (installed as package data)."""
    folder = resources.files("serving.bandit.state").joinpath("lua")
    return "\n".join(folder.joinpath(n).read_text(encoding="utf-8") for n in names)


class RedisStore:
    """State blob + version, pending keys with TTL, log and rewards streams, cap counters."""

    def __init__(
        self, url: str, name: str, *, timeout_s: float = 0.25, log_maxlen: int | None = None
    ) -> None:
        import redis

        self._redis_mod = redis
        self.timeout_s = timeout_s
        self.r: Any = redis.Redis.from_url(
            url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s
        )
        self.prefix = "{reengage:bandit:" + name + "}"  # one hash slot: scripts touch several keys
        self.log_key, self.rewards_key = self.prefix + ":log", self.prefix + ":rewards"
        self.log_maxlen = log_maxlen
        self._reward = self.r.register_script(lua("reward_head.lua", "reward_discount.lua"))
        self._reward_nd = self.r.register_script(lua("reward_head.lua", "reward_add.lua"))
        self._reserve = self.r.register_script(lua("reserve.lua"))

    def _call(self, fn: Any, *args: Any, **kw: Any) -> Any:
        try:
            return fn(*args, **kw)
        except self._redis_mod.TimeoutError as exc:
            raise DependencyUnavailable(
                f"bandit state (redis) did not answer within {self.timeout_s} s: {exc}"
            ) from None
        except self._redis_mod.ConnectionError as exc:
            raise DependencyUnavailable(f"bandit state (redis) is unavailable: {exc}") from None

    def _pkeys(self, bid: str) -> tuple[str, str, str]:
        """Pending meta (header + 4 bytes a row), pending context, once-only rewards."""
        p = f"{self.prefix}:p:{bid}"
        return p + ":m", p + ":x", p + ":r"

    # ------------------------------------------------------------------ statistics
    def read_state(self, key: str, shape: tuple[int, int]) -> tuple[int, np.ndarray]:
        pipe = (
            self.r.pipeline(transaction=True).get(self.prefix + key).get(self.prefix + key + ":v")
        )
        blob, ver = self._call(pipe.execute)
        if not blob or len(blob) != shape[0] * shape[1] * 8:
            return int(ver or 0), np.zeros(shape)
        return int(ver or 0), np.frombuffer(blob, "<f8").reshape(shape).copy()

    def state_version(self, key: str) -> int:
        return int(self._call(self.r.get, self.prefix + key + ":v") or 0)

    # ------------------------------------------------------------------ decisions
    def commit(self, group: Group) -> None:
        """One reservation script for the whole group, then one MULTI/EXEC of every record.
        If the second step fails the contacts stay reserved: caps err towards fewer contacts."""
        if group.reservations:
            self._reserve_all(group.reservations)
        pipe = self.r.pipeline(transaction=True)
        px = int(group.ttl_s * 1000)
        for rec in group.records:
            self._log(pipe, rec, px)
        self._call(pipe.execute)

    def _reserve_all(self, reservations: list[Reservation]) -> None:
        args: list[Any] = [self.prefix + ":cap:"]
        for res in reservations:
            ids = res.customer_ids.tolist()
            args += [repr(float(res.now)), repr(float(res.window_s)), res.cap, len(ids), *ids]
        allowed = np.asarray(
            self._call(self._reserve, keys=[self.prefix + ":cap"], args=args), dtype=bool
        )
        start = 0
        for res in reservations:
            res.settle(allowed[start : start + len(res.rows)])
            start += len(res.rows)

    def _log(self, pipe: Any, rec: BatchRecord, px: int) -> None:
        m, x, _ = self._pkeys(rec.batch_id)
        fields = {k: v for k, v in encode_record(rec).items() if v is not None}
        pipe.set(m, _HEADER.pack(rec.t, rec.n, rec.dim) + fields["meta"], px=px)
        pipe.set(x, fields["context"], px=px)
        pipe.xadd(self.log_key, fields, maxlen=self.log_maxlen, approximate=True)

    def pending(self, batch_ids: list[str], rows: np.ndarray, dim: int) -> Pending:
        pipe = self.r.pipeline(transaction=False)
        for bid, row in zip(batch_ids, rows.tolist()):  # one row's bytes each, not the batch
            m, x, _ = self._pkeys(bid)
            pipe.getrange(m, 0, _HEADER.size - 1)
            pipe.getrange(m, _HEADER.size + 4 * row, _HEADER.size + 4 * row + 3)
            pipe.getrange(x, 4 * dim * row, 4 * dim * (row + 1) - 1)
        res = self._call(pipe.execute)
        out = Pending.empty(len(batch_ids), dim)
        for i in range(len(batch_ids)):  # feedback path: one decoded row per reward
            head, meta, ctx = res[3 * i : 3 * i + 3]
            if len(head) == _HEADER.size and len(meta) == 4 and rows[i] >= 0:
                t, _, d = _HEADER.unpack(head)
                out.fill(np.array([i]), t, d, meta, ctx, np.zeros(1, np.int64))
        return out

    # ------------------------------------------------------------------ rewards
    def record_rewards(self, upd: RewardUpdate) -> np.ndarray:
        script = self._reward if upd.discount < 1 else self._reward_nd
        width = upd.shape[1] * 8
        pipe = self.r.pipeline(transaction=False)
        for i, (bid, row) in enumerate(zip(upd.batch_ids, upd.rows.tolist())):
            m, _, rk = self._pkeys(bid)
            learn = bool(upd.update[i])
            script(
                keys=[m, rk, self.rewards_key, self.prefix + upd.key, self.prefix + upd.key + ":v"],
                args=[
                    row,
                    repr(float(upd.rewards[i])),
                    repr(float(upd.now)),
                    f"{bid}-{row}",
                    repr(float(upd.discount)),
                    int(upd.arms[i]) * width if learn else 0,
                    upd.inc[i].astype("<f8").tobytes() if learn else b"",
                    upd.shape[0] * width,
                ],
                client=pipe,
            )
        return np.asarray(self._call(pipe.execute), dtype=np.int8)

    # ------------------------------------------------------------------ log
    def read_log(
        self, since: float | None = None
    ) -> tuple[list[BatchRecord], dict[tuple[str, int], float]]:
        recs: dict[str, BatchRecord] = {}
        for f in self._stream(self.log_key):
            rec = decode_record({k.decode(): v for k, v in f.items()})
            if since is None or rec.t >= since:
                recs.setdefault(rec.batch_id, rec)  # a retried write may have landed twice
        rewards: dict[tuple[str, int], float] = {}
        for f in self._stream(self.rewards_key):
            bid, _, row = f[b"id"].decode().rpartition("-")
            rewards.setdefault((bid, int(row)), float(f[b"reward"]))
        return list(recs.values()), rewards

    def read_since(
        self, since: float, cursor: Cursor | None = None
    ) -> tuple[list[BatchRecord], list[RewardRow], Cursor]:
        """What was written after ``cursor`` (None: from ``since``): each stream read from
        the entry after the last one seen (entry ids are the stream's write order, exact),
        or on a first read from ``since``'s ms (an entry is written after its decision).
        The cost follows what is new, not the log."""

        def start(key: str) -> str:
            return (
                "(" + cursor[key] if cursor and cursor.get(key) else str(max(int(since * 1000), 0))
            )

        recs: dict[str, BatchRecord] = {}
        last = {
            "log": cursor.get("log") if cursor else None,
            "rewards": cursor.get("rewards") if cursor else None,
        }
        for entry_id, f in self._stream(self.log_key, start=start("log"), ids=True):
            last["log"] = entry_id.decode()
            rec = decode_record({k.decode(): v for k, v in f.items()})
            if rec.t >= since:
                recs.setdefault(rec.batch_id, rec)
        rewards: list[RewardRow] = []
        for entry_id, f in self._stream(self.rewards_key, start=start("rewards"), ids=True):
            last["rewards"] = entry_id.decode()
            recorded = float(f[b"t"])
            if recorded >= since:
                bid, _, row = f[b"id"].decode().rpartition("-")
                rewards.append((bid, int(row), float(f[b"reward"]), recorded))
        return list(recs.values()), rewards, last

    def _stream(self, key: str, page: int = 200, start: str = "-", ids: bool = False) -> Any:
        while True:
            chunk = self._call(self.r.xrange, key, start, "+", count=page)
            for entry_id, fields in chunk:
                yield (entry_id, fields) if ids else fields
            if len(chunk) < page:
                return
            start = "(" + chunk[-1][0].decode()

    # ------------------------------------------------------------------ erasure
    def erase(self, customer_id: int, pseudonym: int) -> dict[str, int]:
        """Tombstone every logged row of the customer (``records.tombstone``): a stream entry
        cannot change, so each entry holding one is replaced by its tombstoned copy (the
        same decision time ``t``, a new entry id); the pending rows are overwritten in
        place, its rewards and its contact counter deleted."""
        targets = np.array([pseudonym, customer_id], dtype=np.int64)
        hits = [
            (eid, f, rows)
            for eid, f in self._stream(self.log_key, ids=True)
            if len(rows := erased_rows(f[b"customer_ids"], targets))
        ]
        done: dict[str, int] = {"decision_rows": 0, "rewards": 0, "contacts": 0}
        erased_ids: set[str] = set()
        pipe = self.r.pipeline(transaction=True)
        for eid, f, rows in hits:
            rec = tombstone(decode_record({k.decode(): v for k, v in f.items()}), rows)
            fields = {k: v for k, v in encode_record(rec).items() if v is not None}
            pipe.xdel(self.log_key, eid)
            pipe.xadd(self.log_key, fields)
            m, x, _ = self._pkeys(rec.batch_id)
            for row in rows.tolist():  # SETRANGE keeps the key's expiry
                pipe.setrange(m, _HEADER.size + 4 * row, fields["meta"][4 * row : 4 * row + 4])
                pipe.setrange(x, 4 * rec.dim * row, bytes(4 * rec.dim))
                erased_ids.add(f"{rec.batch_id}-{row}")
            done["decision_rows"] += len(rows)
        for eid, f in self._stream(self.rewards_key, ids=True):
            if f[b"id"].decode() in erased_ids:
                pipe.xdel(self.rewards_key, eid)
                done["rewards"] += 1
        pipe.unlink(f"{self.prefix}:cap:{int(customer_id)}")
        done["contacts"] = int(self._call(pipe.execute)[-1])
        return done

    # ------------------------------------------------------------------ retention
    def trim(self, retention: Retention) -> Trimmed:
        """Both streams by entry id (the ms it was written: a decision's commit follows its
        decision by milliseconds) with ``XTRIM MINID``; for size, the cutoff is placed where
        the streams' memory would fit, interpolated between the oldest and newest entry,
        never past ``protect_after``. Pending keys and contact counters expire on their own
        (the reward and cap windows), so the streams are all that would grow."""
        before = self._stream_bytes()
        cutoff_ms = int(retention.before * 1000)
        if retention.max_bytes is not None and before > retention.max_bytes:
            span = self._id_span_ms()
            if span is not None:
                lo, hi = span
                at = lo + (hi - lo) * (1.0 - retention.max_bytes / before)
                cutoff_ms = max(cutoff_ms, int(min(at, retention.protect_after * 1000)))
        gone = int(self._call(self.r.xtrim, self.log_key, minid=cutoff_ms, approximate=False))
        self._call(self.r.xtrim, self.rewards_key, minid=cutoff_ms, approximate=False)
        after = self._stream_bytes()
        over = retention.max_bytes is not None and after > retention.max_bytes
        return Trimmed(gone, before, after, over)

    def _stream_bytes(self) -> int:
        keys = (self.log_key, self.rewards_key)
        return sum(int(self._call(self.r.memory_usage, k, samples=16) or 0) for k in keys)

    def _id_span_ms(self) -> tuple[int, int] | None:
        first = self._call(self.r.xrange, self.log_key, "-", "+", count=1)
        last = self._call(self.r.xrevrange, self.log_key, "+", "-", count=1)
        if not first or not last:
            return None
        return int(first[0][0].split(b"-")[0]), int(last[0][0].split(b"-")[0])

    def drop(self) -> int:
        """Delete every key of this router name (benchmarks, tests); returns how many."""
        keys = list(self.r.scan_iter(match=self.prefix + "*", count=1000))
        # in chunks: one DEL of many keys can outlast the socket timeout
        return sum(int(self.r.delete(*keys[i : i + 500])) for i in range(0, len(keys), 500))

    def close(self) -> None:
        self.r.close()
