"""The Redis backend: one MGET per batch read, pipelined MSETs to write.

Plain Redis, Redis Cluster or Sentinel. Reads use short socket and connect timeouts and
no retries, so a down or slow server fails within ``timeout_s`` and the pool reconnects
by itself on a later call; writes (materialization) get their own, patient client.

A read that timed out (a hung or overloaded server, not a refused connection, which fails
at once anyway) opens a short breaker: for ``retry_s`` further reads fail at once with the
same reason instead of each holding a thread for ``timeout_s``; then one read tries again.

Every write also sets a marker key per view prefix (the bare prefix, shorter than any
record key), so :meth:`RedisStore.populated` knows an emptied or never-materialized store
with one ``EXISTS`` per view.
"""

from __future__ import annotations

import time
from itertools import chain
from typing import Any, Callable, Literal, Sequence

import numpy as np

from feature_store.errors import OnlineStoreUnavailable
from feature_store.online_store.kv import Fetched, KeyValueStore, Replies
from feature_store.online_store.layout import build_keys
from feature_store.online_store.resp import mget_command, send_packed
from feature_store.redact import redact_url

RedisType = Literal["redis", "redis_cluster", "redis_sentinel"]


class RedisStore(KeyValueStore):
    """Redis: one MGET for every key of a read (one round trip), MSET pipelines to write.

    ``url`` is a redis-py URL (for sentinel: comma-separated ``host:port`` of the
    sentinels); ``address`` is how errors name the server (default: ``url``), its
    credentials masked.
    """

    def __init__(
        self,
        url: str,
        *,
        address: str | None = None,
        redis_type: RedisType = "redis",
        sentinel_master: str = "mymaster",
        timeout_s: float = 0.25,
        write_timeout_s: float = 30.0,
        write_chunk: int = 20_000,
        retry_s: float | None = None,
    ) -> None:
        self.url, self.redis_type, self.sentinel_master = url, redis_type, sentinel_master
        self.write_timeout_s, self.write_chunk = write_timeout_s, write_chunk
        self.name = f"feature store (redis at {redact_url(address or url)})"
        self.timeout_s = timeout_s
        self.retry_s = 2 * timeout_s if retry_s is None else retry_s
        self.client = self._client(timeout_s)
        self._writer: Any = None
        self.cluster = redis_type == "redis_cluster"
        self._open_until = 0.0  # breaker: reads fail at once until then (monotonic s)
        self._open_reason = ""

    def _client(self, timeout_s: float) -> Any:
        """A client that gives up after ``timeout_s`` and never retries (fail fast, reconnect
        later)."""
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        if self.redis_type == "redis_cluster":
            from redis.cluster import RedisCluster

            return RedisCluster.from_url(
                self.url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s
            )
        if self.redis_type == "redis_sentinel":
            from redis.sentinel import Sentinel

            hosts = [
                (h.split(":")[0], int(h.split(":")[1]))
                for h in self.url.replace("redis://", "").split(",")
            ]
            sentinel = Sentinel(hosts, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)
            return sentinel.master_for(self.sentinel_master, socket_timeout=timeout_s)
        return redis.Redis.from_url(
            self.url,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            retry=Retry(NoBackoff(), 0),
            health_check_interval=0,
        )

    def _guard(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn``; a Redis or socket failure becomes :class:`OnlineStoreUnavailable` naming
        this server."""
        import redis

        try:
            return fn()
        except (redis.RedisError, OSError) as exc:
            raise OnlineStoreUnavailable(self.name, f"{type(exc).__name__}: {exc}") from exc

    def _read(self, fn: Callable[[], Any]) -> Any:
        """A read behind the breaker: a timeout opens it for ``retry_s``, during which reads fail
        at once."""
        import redis

        if self._open_until and time.monotonic() < self._open_until:
            raise OnlineStoreUnavailable(self.name, self._open_reason)
        try:
            result = self._guard(fn)
        except OnlineStoreUnavailable as exc:
            if isinstance(exc.__cause__, (redis.TimeoutError, TimeoutError)):
                self._open_reason = (
                    f"no answer within {self.timeout_s:g} s ({exc.reason}); "
                    f"retrying every {self.retry_s:g} s"
                )
                self._open_until = time.monotonic() + self.retry_s
            raise
        self._open_until = 0.0
        return result

    def populated(self, prefixes: Sequence[bytes]) -> list[bool]:
        """The view markers every write sets; for stores written before markers existed, one
        bounded ``SCAN`` per prefix without one."""
        if not prefixes:
            return []
        marks = self._read(
            lambda: (
                [self.client.exists(p) for p in prefixes]
                if self.cluster
                else self.client.execute_command("MGET", *prefixes)
            )
        )
        out = [bool(m) for m in marks]
        for i, prefix in enumerate(prefixes):
            if not out[i]:
                out[i] = self._read(lambda: self._scan_one(prefix))
        return out

    def _scan_one(self, prefix: bytes, pages: int = 20) -> bool:
        """Any key under ``prefix`` within ``pages`` SCAN pages (an emptied server answers at
        once)."""
        cursor = 0
        for _ in range(pages):
            cursor, keys = self.client.scan(cursor, match=prefix + b"*", count=1000)
            if keys:
                return True
            if not cursor:
                return False
        return False

    def fetch(self, prefixes: Sequence[bytes], ids: np.ndarray) -> Fetched:
        nv = len(prefixes)
        if len(ids) == 0 or not nv:
            return Fetched([Replies(np.zeros(0, bool), []) for _ in prefixes], b"")
        if self.cluster:  # keys hash to many slots: redis-py splits the MGET per node
            keys = list(chain.from_iterable(zip(*(build_keys(p, ids) for p in prefixes))))
            replies = self._read(lambda: self.client.mget_nonatomic(keys))
        else:
            command = mget_command(prefixes, ids)
            replies = self._read(lambda: send_packed(self.client, command))
        try:
            joined = b"".join(replies)  # doubles as the "every key found" check: a nil raises
        except TypeError:
            return Fetched([_replies(replies[v::nv]) for v in range(nv)])
        return Fetched(
            [Replies(np.ones(len(ids), bool), replies[v::nv]) for v in range(nv)], joined
        )

    @property
    def writer(self) -> Any:
        if self._writer is None:
            self._writer = self._client(self.write_timeout_s)
        return self._writer

    def write(self, keys: list[bytes], values: list[bytes]) -> None:
        def run() -> None:
            pipe = self.writer.pipeline(transaction=False)
            step = self.write_chunk
            for i in range(0, len(keys), step):
                pipe.mset(dict(zip(keys[i : i + step], values[i : i + step])))
            for prefix in (
                {k[:-8] for k in (keys[0], keys[-1])} if keys else ()
            ):  # marker: see populated()
                pipe.set(prefix, b"1")
            pipe.execute()

        self._guard(run)

    def delete(self, keys: list[bytes]) -> int:
        return int(self._guard(lambda: self.writer.unlink(*keys))) if keys else 0

    def delete_prefix(self, prefix: bytes) -> int:
        def run() -> int:
            marker = self.writer.exists(prefix)  # the view's marker goes too, but is no record
            deleted, batch = 0, []
            for key in self.writer.scan_iter(match=prefix + b"*", count=10_000):
                batch.append(key)
                if len(batch) >= 10_000:
                    deleted += self.writer.unlink(*batch)
                    batch = []
            if batch:
                deleted += self.writer.unlink(*batch)
            return deleted - int(marker)

        return self._guard(run)


def _replies(replies: list[bytes | None]) -> Replies:
    """One view's MGET replies, some of them nil."""
    arr = np.asarray(replies + [b""], object)[:-1]  # the b"" keeps a 1-D object array
    found = arr.astype(bool)  # records are never empty; nil is None
    return Replies(found, arr[found].tolist())


def url_from_connection_string(conn: str) -> str:
    """Feast's "host:port,db=0,password=x,ssl=true" to a redis-py URL."""
    host, *params = conn.split(",")
    kv = dict(p.split("=", 1) for p in params if "=" in p)
    scheme = "rediss" if kv.get("ssl", "").lower() == "true" else "redis"
    auth = f":{kv['password']}@" if "password" in kv else ""
    return f"{scheme}://{auth}{host}/{kv.get('db', 0)}"
