"""A Feast online store built for batch reads: one packed record per entity and view.

Feast's own Redis store keeps one hash per entity with a protobuf per feature and reads
with one HMGET per entity; that caps reads near 4k entities/s. Here each (entity,
feature view) row is a single value: a 16-byte header (schema tag, flags, event time in
microseconds) and the features. Views whose features are all Float32 (or all Float64)
are a fixed-size array of floats, so a batch of N rows decodes with one
``np.frombuffer``; views with other types (strings...) hold length-prefixed Feast
``ValueProto`` bytes and are decoded in Python (Feast's ``get_online_features`` path only).

The schema tag is a CRC of the view's name, feature names and types as the registry
states them: a record written under another schema is never decoded, it reads as "not
found" (and ``schema_mismatch``). Rows older than the view's TTL read as not found too,
in ``online_read`` (so Feast's ``get_online_features`` honours TTL) and in the batch
reader alike.

Two backends share the key and record format: Redis (pooled, pipelined, optional
cluster / sentinel) and an embedded LMDB file (default; many reader processes, one
writer, atomic transactions).
"""

from __future__ import annotations

import logging
import os
import threading
import time
import zlib
from itertools import chain, compress
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from operator import itemgetter
from pathlib import Path
from typing import Any, Callable, Literal, Optional, Sequence

import numpy as np
import pyarrow as pa
from feast import Entity, FeatureView, RepoConfig
from feast.infra.compute_engines.local.compute import LocalComputeEngine
from feast.infra.online_stores.online_store import OnlineStore
from feast.protos.feast.types.EntityKey_pb2 import EntityKey as EntityKeyProto
from feast.protos.feast.types.Value_pb2 import Value as ValueProto
from feast.repo_config import FeastConfigBaseModel
from pydantic import StrictStr

from serving.errors import DependencyUnavailable

log = logging.getLogger(__name__)

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
HEADER = np.dtype([("tag", "<u4"), ("flags", "<u4"), ("ts", "<i8")])
FLAG_GENERIC = 1
FORMAT_VERSION = "packed-v1"

# read status per (row, view)
MISSING, OK, EXPIRED, SCHEMA = 0, 1, 2, 3


class PackedOnlineStoreConfig(FeastConfigBaseModel):
    """``online_store:`` block of feature_store.yaml for :class:`PackedOnlineStore`."""

    type: StrictStr = "feature_store.online_store.PackedOnlineStore"
    backend: Literal["embedded", "redis"] = "embedded"
    path: StrictStr = "data/online_store.lmdb"
    """embedded: LMDB directory, relative to the repo (feature_store.yaml's folder)"""
    url: StrictStr = "redis://127.0.0.1:6379/0"
    """redis: redis-py URL; for sentinel, comma-separated host:port of the sentinels"""
    connection_string: Optional[StrictStr] = None
    """redis: Feast-style "host:port,db=0,password=..." (overrides ``url`` when set)"""
    redis_type: Literal["redis", "redis_cluster", "redis_sentinel"] = "redis"
    sentinel_master: StrictStr = "mymaster"
    key_prefix: Optional[StrictStr] = None
    """key namespace; default: the project name"""
    timeout_s: float = 0.25
    """reads fail fast after this (Redis socket / connect timeout)"""
    write_timeout_s: float = 30.0
    map_size_mb: int = 8192
    """embedded: LMDB address space reserved (sparse; not disk used)"""
    write_chunk: int = 20_000


# --------------------------------------------------------------------------- layout


@dataclass(frozen=True)
class ViewLayout:
    """How one feature view's rows are laid out, derived from the registry's definition."""

    name: str
    features: tuple[str, ...]
    types: tuple[str, ...]
    tag: int
    packed: bool
    dtype: np.dtype  # record dtype (packed views) or HEADER (generic)
    ttl_us: int  # 0: no TTL
    defaults: tuple[float, ...]

    @property
    def size(self) -> int:
        return self.dtype.itemsize


def layout_for(view: FeatureView) -> ViewLayout:
    """The record layout of ``view``; the tag changes whenever names or types change."""
    names = tuple(f.name for f in view.features)
    types = tuple(str(f.dtype) for f in view.features)
    sig = f"{FORMAT_VERSION}|{view.name}|" + ",".join(f"{n}:{t}" for n, t in zip(names, types))
    tag = zlib.crc32(sig.encode())
    kinds = set(types)
    packed = kinds in ({"Float32"}, {"Float64"})
    if packed:
        ftype = "<f4" if kinds == {"Float32"} else "<f8"
        dtype = np.dtype(HEADER.descr + [("v", ftype, (len(names),))])
    else:
        dtype = HEADER
    ttl = view.ttl if isinstance(view.ttl, timedelta) else timedelta(0)
    ttl_us = int(ttl / timedelta(microseconds=1))
    defaults = tuple(_default_of(f) for f in view.features)
    return ViewLayout(view.name, names, types, tag, packed, dtype, ttl_us, defaults)


def _default_of(field: Any) -> float:
    """A feature's fallback value: its ``default`` tag when numeric, else 0.0."""
    try:
        return float((field.tags or {}).get("default", 0.0))
    except (TypeError, ValueError):
        return 0.0


# --------------------------------------------------------------------------- keys


def key_prefix(config: RepoConfig) -> bytes:
    return (config.online_store.key_prefix or config.project).encode()


def view_prefix(prefix: bytes, view: str) -> bytes:
    return prefix + b":" + view.encode() + b":"


def build_keys(prefix: bytes, ids: np.ndarray) -> list[bytes]:
    """``prefix`` + 8-byte big-endian id per entity, built as one byte matrix.

    ``V`` (void) items convert to ``bytes`` without stripping NULs, so ``tolist`` makes
    the N key objects in C instead of N Python string formats.
    """
    n, p = len(ids), len(prefix)
    buf = np.empty((n, p + 8), np.uint8)
    buf[:, :p] = np.frombuffer(prefix, np.uint8)
    buf[:, p:] = np.ascontiguousarray(ids, dtype=">i8").view(np.uint8).reshape(n, 8)
    return buf.view(f"V{p + 8}").ravel().tolist()


def mget_command(prefixes: Sequence[bytes], ids: np.ndarray) -> bytearray:
    """The RESP bytes of ``MGET`` over ``prefix + id``, entity-major: id 0 under every prefix, then id 1...

    Keys have a fixed length per prefix, so the request is one template row per entity
    repeated N times, with the ids written into one column per prefix: no key objects,
    and none of redis-py's ``pack_command``, which costs a quarter of a 2,000-key MGET.
    Byte for byte what ``pack_command("MGET", *keys)`` sends.
    """
    ids8 = np.ascontiguousarray(ids, dtype=">i8").view(np.uint8).reshape(-1, 8)
    n = len(ids8)
    heads = [b"$%d\r\n" % (len(p) + 8) + p for p in prefixes]
    row = b"".join(h + bytes(8) + b"\r\n" for h in heads)
    header = b"*%d\r\n$4\r\nMGET\r\n" % (n * len(prefixes) + 1)
    command = bytearray(header + row * n)
    rows = np.frombuffer(command, np.uint8)[len(header) :].reshape(n, len(row))
    at = 0
    for head in heads:
        rows[:, at + len(head) : at + len(head) + 8] = ids8
        at += len(head) + 10
    return command


def ids_of_keys(keys: list[bytes], key_len: int) -> np.ndarray:
    raw = np.frombuffer(b"".join(keys), np.uint8).reshape(-1, key_len)
    return np.ascontiguousarray(raw[:, -8:]).view(">i8").ravel().astype(np.int64)


def entity_ids(entity_keys: Sequence[EntityKeyProto]) -> np.ndarray:
    """Int64 ids from Feast entity keys (one integer join key, as our entity has)."""
    if entity_keys and len(entity_keys[0].entity_values) != 1:
        raise ValueError("PackedOnlineStore supports one integer join key per entity")
    vals = [ek.entity_values[0] for ek in entity_keys]
    kind = vals[0].WhichOneof("val") if vals else "int64_val"
    if kind not in ("int64_val", "int32_val"):
        raise ValueError(f"PackedOnlineStore needs an Int64/Int32 join key, got {kind}")
    return np.fromiter((getattr(v, kind) for v in vals), np.int64, len(vals))


def to_us(ts: datetime) -> int:
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=timezone.utc)
    return (ts - EPOCH) // timedelta(microseconds=1)


def from_us(us: int) -> datetime:
    return EPOCH + timedelta(microseconds=int(us))


def now_us() -> int:
    return time.time_ns() // 1000


# --------------------------------------------------------------------------- encode


def encode_packed(layout: ViewLayout, ts_us: np.ndarray, values: np.ndarray) -> list[bytes]:
    """N records of a packed view from (N,) microsecond times and an (N, F) matrix."""
    rec = np.zeros(len(ts_us), layout.dtype)
    rec["tag"] = layout.tag
    rec["ts"] = ts_us
    rec["v"] = values
    return rec.view(f"V{layout.size}").tolist()


def encode_generic(layout: ViewLayout, ts_us: int, row: dict[str, ValueProto]) -> bytes:
    head = np.zeros(1, HEADER)
    head["tag"], head["flags"], head["ts"] = layout.tag, FLAG_GENERIC, ts_us
    parts = [head.tobytes()]
    for name in layout.features:
        proto = row.get(name)
        body = proto.SerializeToString() if proto is not None else b""
        parts.append(len(body).to_bytes(4, "little"))
        parts.append(body)
    return b"".join(parts)


def decode_generic(layout: ViewLayout, record: bytes) -> dict[str, ValueProto]:
    out: dict[str, ValueProto] = {}
    pos = HEADER.itemsize
    for name in layout.features:
        size = int.from_bytes(record[pos : pos + 4], "little")
        pos += 4
        proto = ValueProto()
        proto.ParseFromString(record[pos : pos + size])
        pos += size
        out[name] = proto
    return out


def values_from_protos(layout: ViewLayout, rows: Sequence[dict[str, ValueProto]]) -> np.ndarray:
    """(N, F) floats from Feast's per-row ValueProto dicts; unset values become NaN."""
    field = "float_val" if layout.dtype["v"].base == np.float32 else "double_val"
    out = np.empty((len(rows), len(layout.features)), layout.dtype["v"].base)
    for j, name in enumerate(layout.features):
        protos = [r.get(name) for r in rows]
        out[:, j] = [getattr(p, field) if p is not None and p.HasField(field) else np.nan for p in protos]
    return out


# --------------------------------------------------------------------------- decode


@dataclass
class Replies:
    """One view's replies to a batch read."""

    found: np.ndarray  # (N,) bool
    records: list[bytes]  # the records of found rows, in row order


@dataclass
class Fetched:
    """A batch read of N ids over V views: replies per view, and the whole block when complete.

    ``joined`` holds every record entity-major (id 0's V records, then id 1's...) and is
    set only when every key was found: the reader's one-pass decode reads it as an
    (N, bytes per entity) matrix.
    """

    views: list[Replies]
    joined: bytes | None = None


@dataclass
class Decoded:
    """One view's rows of a batch read: status per row, times, and the packed values."""

    status: np.ndarray  # (N,) int8: MISSING / OK / EXPIRED / SCHEMA
    ts_us: np.ndarray  # (N,) int64, 0 where not OK
    values: np.ndarray | None  # (N, F) floats for packed views (garbage where not OK)
    records: list[bytes] | None = None  # generic views: present records, in row order
    all_ok: bool = False  # every row OK: nothing to mask


def _packed_records(layout: ViewLayout, fetched: Replies) -> tuple[np.ndarray, np.ndarray | None]:
    """The found records as ``layout.dtype``, and which carry this layout's tag (None: all).

    Fast path: one ``np.frombuffer`` over the joined bytes. It is only trusted when every
    tag matches: a tag fixes the record size, so by induction from the first record every
    record then starts where the frombuffer assumes. Otherwise (another schema, another
    size) records are sized one by one and only the right ones are decoded.
    """
    m = len(fetched.records)
    joined = b"".join(fetched.records)
    if len(joined) == m * layout.size:
        rec = np.frombuffer(joined, layout.dtype)
        if (rec["tag"] == layout.tag).all():
            return rec, None
    right = np.fromiter(map(len, fetched.records), np.int64, m) == layout.size
    rec = np.zeros(m, layout.dtype)
    if right.any():
        rec[right] = np.frombuffer(b"".join(compress(fetched.records, right)), layout.dtype)
    return rec, right & (rec["tag"] == layout.tag)


def decode(layout: ViewLayout, fetched: Replies, now: int) -> Decoded:
    """Vectorized decode of one view's records; rows past the view's TTL read as EXPIRED."""
    n = len(fetched.found)
    good: np.ndarray | None  # rows that are OK; None: all of them
    if layout.packed and len(fetched.records) == n:  # every row found: no scatter
        rec, good = _packed_records(layout, fetched)
        ts, values = rec["ts"].astype(np.int64), rec["v"]
        status = np.full(n, OK, np.int8)
        if good is not None:
            status[~good] = SCHEMA
    else:
        status = np.zeros(n, np.int8)
        ts = np.zeros(n, np.int64)
        values = np.full((n, len(layout.features)), np.nan, np.float32) if layout.packed else None
        rows = np.flatnonzero(fetched.found)
        right = None  # the found rows' tag check; None: all right
        if rows.size and layout.packed:
            rec, right = _packed_records(layout, fetched)
            values[rows], ts[rows] = rec["v"], rec["ts"]
        elif rows.size:
            heads = np.frombuffer(b"".join(r[: HEADER.itemsize] for r in fetched.records), HEADER)
            ts[rows], right = heads["ts"], heads["tag"] == layout.tag
        status[rows] = OK if right is None else np.where(right, OK, SCHEMA)
        good = None if rows.size == n and right is None else status == OK
    if layout.ttl_us:
        expired = ts < now - layout.ttl_us
        if good is not None:
            expired &= good
        if expired.any():
            status[expired] = EXPIRED
            good = ~expired if good is None else good & ~expired
    if good is not None:
        ts[~good] = 0
    return Decoded(status, ts, values, None if layout.packed else fetched.records, good is None)


# --------------------------------------------------------------------------- backends


class Backend:
    """Key-value access shared by the store (writes) and the batch reader (reads)."""

    name = "feature store"

    def fetch(self, prefixes: Sequence[bytes], ids: np.ndarray) -> Fetched:
        """The records of ``prefix + id`` for every id and prefix, in one round trip."""
        raise NotImplementedError

    def write(self, keys: list[bytes], values: list[bytes]) -> None:
        raise NotImplementedError

    def delete_prefix(self, prefix: bytes) -> int:
        raise NotImplementedError


class LmdbBackend(Backend):
    """Embedded LMDB: readers in many processes, one writer, each write one transaction.

    LMDB allows one ``Environment`` per file per process, hence the module-level cache.
    """

    _envs: dict[str, Any] = {}
    _lock = threading.Lock()

    def __init__(self, path: Path, map_size_mb: int) -> None:
        import lmdb

        self.path = str(path.resolve())
        self.name = f"feature store (embedded LMDB at {self.path})"
        with self._lock:
            env = self._envs.get(self.path)
            if env is None:
                path.mkdir(parents=True, exist_ok=True)
                env = lmdb.open(self.path, map_size=map_size_mb << 20, max_readers=1024,
                                readahead=False, max_dbs=0)
                self._envs[self.path] = env
        self.env = env

    def fetch(self, prefixes: Sequence[bytes], ids: np.ndarray) -> Fetched:
        import lmdb

        try:
            with self.env.begin(buffers=False) as txn:
                cursor = txn.cursor()
                views = [self._one(cursor, build_keys(prefix, ids)) for prefix in prefixes]
        except lmdb.MapResizedError:  # another process grew the map: adopt and retry
            self.env.set_mapsize(0)
            return self.fetch(prefixes, ids)
        except lmdb.Error as exc:
            raise DependencyUnavailable(f"{self.name} unavailable: {exc}") from exc
        if not all(len(v.records) == len(ids) for v in views):
            return Fetched(views)
        if len(views) == 1:
            return Fetched(views, b"".join(views[0].records))
        return Fetched(views, b"".join(chain.from_iterable(zip(*(v.records for v in views)))))

    @staticmethod
    def _one(cursor: Any, keys: list[bytes]) -> Replies:
        pairs = cursor.getmulti(keys)
        records = list(map(itemgetter(1), pairs))
        if len(pairs) == len(keys):
            return Replies(np.ones(len(keys), bool), records)
        found = np.zeros(len(keys), bool)
        if pairs:
            key_len = len(keys[0])
            found = np.isin(ids_of_keys(keys, key_len), ids_of_keys(list(map(itemgetter(0), pairs)), key_len))
        return Replies(found, records)

    def write(self, keys: list[bytes], values: list[bytes]) -> None:
        with self.env.begin(write=True) as txn:
            txn.cursor().putmulti(zip(keys, values))

    def delete_prefix(self, prefix: bytes) -> int:
        deleted = 0
        with self.env.begin(write=True) as txn:
            cur = txn.cursor()
            if cur.set_range(prefix):
                while cur.key().startswith(prefix):
                    if not cur.delete():
                        break
                    deleted += 1
        return deleted


class RedisBackend(Backend):
    """Redis: one MGET for every key of a read (one round trip), MSET pipelines to write.

    Reads run on a client with short socket timeouts and no retries, so a down or slow
    server fails within ``timeout_s``; the pool reconnects by itself on a later call.
    """

    def __init__(self, cfg: PackedOnlineStoreConfig, timeout_s: float) -> None:
        self.cfg = cfg
        where = cfg.connection_string or cfg.url
        self.name = f"feature store (redis at {where})"
        self.client = _redis_client(cfg, timeout_s)
        self._writer: Any = None
        self.cluster = cfg.redis_type == "redis_cluster"

    def _guard(self, fn: Callable[[], Any]) -> Any:
        import redis

        try:
            return fn()
        except (redis.RedisError, OSError) as exc:
            raise DependencyUnavailable(f"{self.name} unavailable: {type(exc).__name__}: {exc}") from exc

    def fetch(self, prefixes: Sequence[bytes], ids: np.ndarray) -> Fetched:
        nv = len(prefixes)
        if len(ids) == 0 or not nv:
            return Fetched([Replies(np.zeros(0, bool), []) for _ in prefixes], b"")
        if self.cluster:  # keys hash to many slots: redis-py splits the MGET per node
            keys = list(chain.from_iterable(zip(*(build_keys(p, ids) for p in prefixes))))
            replies = self._guard(lambda: self.client.mget_nonatomic(keys))
        else:
            command = mget_command(prefixes, ids)
            replies = self._guard(lambda: send_packed(self.client, command))
        try:
            joined = b"".join(replies)  # doubles as the "every key found" check: a nil raises
        except TypeError:
            return Fetched([_replies(replies[v::nv]) for v in range(nv)])
        return Fetched([Replies(np.ones(len(ids), bool), replies[v::nv]) for v in range(nv)], joined)

    @property
    def writer(self) -> Any:
        if self._writer is None:
            self._writer = _redis_client(self.cfg, self.cfg.write_timeout_s)
        return self._writer

    def write(self, keys: list[bytes], values: list[bytes]) -> None:
        def run() -> None:
            pipe = self.writer.pipeline(transaction=False)
            step = self.cfg.write_chunk
            for i in range(0, len(keys), step):
                pipe.mset(dict(zip(keys[i : i + step], values[i : i + step])))
            pipe.execute()

        self._guard(run)

    def delete_prefix(self, prefix: bytes) -> int:
        def run() -> int:
            deleted, batch = 0, []
            for key in self.writer.scan_iter(match=prefix + b"*", count=10_000):
                batch.append(key)
                if len(batch) >= 10_000:
                    deleted += self.writer.unlink(*batch)
                    batch = []
            if batch:
                deleted += self.writer.unlink(*batch)
            return deleted

        return self._guard(run)


def send_packed(client: Any, command: bytes | bytearray) -> Any:
    """One pre-packed command on a pooled connection, as ``execute_command`` runs it (no retry)."""
    pool = client.connection_pool
    conn = pool.get_connection()
    try:
        conn.send_packed_command([command], check_health=False)
        return conn.read_response()
    except BaseException:
        conn.disconnect()  # a half-read reply must not reach the next caller
        raise
    finally:
        pool.release(conn)


def _replies(replies: list[bytes | None]) -> Replies:
    """One view's MGET replies, some of them nil."""
    arr = np.asarray(replies + [b""], object)[:-1]  # the b"" keeps a 1-D object array
    found = arr.astype(bool)  # records are never empty; nil is None
    return Replies(found, arr[found].tolist())


def _redis_client(cfg: PackedOnlineStoreConfig, timeout_s: float) -> Any:
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    opts: dict[str, Any] = dict(socket_timeout=timeout_s, socket_connect_timeout=timeout_s,
                                retry=Retry(NoBackoff(), 0), health_check_interval=0)
    url = cfg.url
    if cfg.connection_string:
        url = _url_from_connection_string(cfg.connection_string)
    if cfg.redis_type == "redis_cluster":
        from redis.cluster import RedisCluster

        return RedisCluster.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)
    if cfg.redis_type == "redis_sentinel":
        from redis.sentinel import Sentinel

        hosts = [(h.split(":")[0], int(h.split(":")[1])) for h in url.replace("redis://", "").split(",")]
        sentinel = Sentinel(hosts, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)
        return sentinel.master_for(cfg.sentinel_master, socket_timeout=timeout_s)
    return redis.Redis.from_url(url, **opts)


def _url_from_connection_string(conn: str) -> str:
    """Feast's "host:port,db=0,password=x,ssl=true" to a redis-py URL."""
    host, *params = conn.split(",")
    kv = dict(p.split("=", 1) for p in params if "=" in p)
    scheme = "rediss" if kv.get("ssl", "").lower() == "true" else "redis"
    auth = f":{kv['password']}@" if "password" in kv else ""
    return f"{scheme}://{auth}{host}/{kv.get('db', 0)}"


_backends: dict[tuple[Any, ...], Backend] = {}
_backends_lock = threading.Lock()


def backend_for(config: RepoConfig, timeout_s: float | None = None) -> Backend:
    """The (process-wide, cached) backend a repo config points at."""
    cfg = config.online_store
    if not isinstance(cfg, PackedOnlineStoreConfig):
        raise ValueError(f"online_store is {type(cfg).__name__}, not PackedOnlineStoreConfig")
    timeout = timeout_s if timeout_s is not None else cfg.timeout_s
    if cfg.backend == "embedded":
        path = Path(cfg.path)
        if not path.is_absolute():
            path = Path(config.repo_path or os.getcwd()) / path
        key: tuple[Any, ...] = ("lmdb", str(path.resolve()))
    else:
        key = ("redis", cfg.redis_type, cfg.connection_string or cfg.url, cfg.sentinel_master, timeout)
    with _backends_lock:
        backend = _backends.get(key)
        if backend is None:
            backend = (LmdbBackend(path, cfg.map_size_mb) if cfg.backend == "embedded"
                       else RedisBackend(cfg, timeout))
            _backends[key] = backend
    return backend


# --------------------------------------------------------------------------- store


class PackedOnlineStore(OnlineStore):
    """Feast online store (``type: feature_store.online_store.PackedOnlineStore``)."""

    def online_write_batch(
        self,
        config: RepoConfig,
        table: FeatureView,
        data: list[tuple[EntityKeyProto, dict[str, ValueProto], datetime, Optional[datetime]]],
        progress: Optional[Callable[[int], Any]],
    ) -> None:
        if not data:
            return
        layout = layout_for(table)
        ids = entity_ids([row[0] for row in data])
        ts = np.fromiter((to_us(row[2]) for row in data), np.int64, len(data))
        if layout.packed:
            records = encode_packed(layout, ts, values_from_protos(layout, [row[1] for row in data]))
        else:
            records = [encode_generic(layout, int(t), row[1]) for t, row in zip(ts.tolist(), data)]
        self._write(config, layout, ids, ts, records)
        if progress:
            progress(len(data))

    def write_arrow(self, config: RepoConfig, table: FeatureView, data: pa.Table,
                    timestamp_field: str | None = None) -> int:
        """Write an Arrow table of rows (join key, timestamp, features) without protos.

        The vectorized path of :func:`materialize_packed`: packed views never build a
        ``ValueProto``. Returns the rows written.
        """
        layout = layout_for(table)
        if data.num_rows == 0:
            return 0
        join_key = table.entity_columns[0].name
        ts_col = timestamp_field or table.batch_source.timestamp_field
        ids = data.column(join_key).to_numpy().astype(np.int64)
        ts_arr = data.column(ts_col).cast(pa.timestamp("us", tz="UTC")).cast(pa.int64())
        ts = ts_arr.to_numpy(zero_copy_only=False)
        if layout.packed:
            cols = [data.column(f).to_numpy(zero_copy_only=False) for f in layout.features]
            values = np.column_stack(cols).astype(layout.dtype["v"].base) if cols else np.zeros((len(ids), 0))
            records = encode_packed(layout, ts, values)
        else:
            from feast.utils import _columns_to_proto_values

            columns = [(f.name, f.dtype.to_value_type()) for f in table.features]
            protos = _columns_to_proto_values(data.combine_chunks().to_batches()[0], columns)
            rows = [dict(zip(layout.features, vals)) for vals in zip(*(protos[f] for f in layout.features))]
            records = [encode_generic(layout, int(t), r) for t, r in zip(ts.tolist(), rows)]
        self._write(config, layout, ids, ts, records)
        return len(ids)

    @staticmethod
    def _write(config: RepoConfig, layout: ViewLayout, ids: np.ndarray, ts: np.ndarray,
               records: list[bytes]) -> None:
        """Write records, keeping only each entity's latest row of the batch."""
        if len(np.unique(ids)) != len(ids):
            order = np.lexsort((ts, ids))  # last of each id = newest
            last = np.r_[ids[order][1:] != ids[order][:-1], True]
            keep = order[last]
            ids = ids[keep]
            records = np.asarray(records + [b""], object)[:-1][keep].tolist()
        keys = build_keys(view_prefix(key_prefix(config), layout.name), ids)
        backend_for(config).write(keys, records)

    def online_read(
        self,
        config: RepoConfig,
        table: FeatureView,
        entity_keys: list[EntityKeyProto],
        requested_features: Optional[list[str]] = None,
    ) -> list[tuple[Optional[datetime], Optional[dict[str, ValueProto]]]]:
        if not entity_keys:
            return []
        layout = layout_for(table)
        ids = entity_ids(entity_keys)
        fetched = backend_for(config).fetch([view_prefix(key_prefix(config), layout.name)], ids).views[0]
        wanted = set(requested_features) if requested_features else None
        return self._rows(layout, decode(layout, fetched, now_us()), fetched.found, wanted)

    @staticmethod
    def _rows(layout: ViewLayout, dec: Decoded, found: np.ndarray,
              wanted: set[str] | None) -> list[tuple[Optional[datetime], Optional[dict[str, ValueProto]]]]:
        out: list[tuple[Optional[datetime], Optional[dict[str, ValueProto]]]] = [(None, None)] * len(found)
        ok = dec.status == OK
        names = [n for n in layout.features if wanted is None or n in wanted]
        if layout.packed:
            cols = [layout.features.index(n) for n in names]
            field = "float_val" if layout.dtype["v"].base == np.float32 else "double_val"
            vals = dec.values[ok][:, cols].tolist()
            for i, ts, row in zip(np.flatnonzero(ok).tolist(), dec.ts_us[ok].tolist(), vals):
                out[i] = (from_us(ts), {n: ValueProto(**{field: v}) if v == v else ValueProto()
                                        for n, v in zip(names, row)})
        else:
            present_rows = np.flatnonzero(found)
            for rec, i in zip(dec.records or [], present_rows.tolist()):
                if ok[i]:
                    full = decode_generic(layout, rec)
                    out[i] = (from_us(int(dec.ts_us[i])), {n: full[n] for n in names})
        return out

    def update(
        self,
        config: RepoConfig,
        tables_to_delete: Sequence[FeatureView],
        tables_to_keep: Sequence[FeatureView],
        entities_to_delete: Sequence[Entity],
        entities_to_keep: Sequence[Entity],
        partial: bool,
    ) -> None:
        """Drop deleted views' rows; kept views need nothing (a changed schema has a new tag)."""
        backend = backend_for(config)
        for view in tables_to_delete:
            backend.delete_prefix(view_prefix(key_prefix(config), view.name))

    def teardown(self, config: RepoConfig, tables: Sequence[FeatureView], entities: Sequence[Entity]) -> None:
        backend = backend_for(config)
        for view in tables:
            backend.delete_prefix(view_prefix(key_prefix(config), view.name))


# --------------------------------------------------------------------------- materialize


def materialize_packed(store: Any, start_date: datetime, end_date: datetime,
                       feature_views: Sequence[str] | None = None, console: Any = None) -> dict[str, int]:
    """``feast materialize`` without protos: offline rows as Arrow, packed, written in bulk.

    Feast stays the source of truth: views and sources come from its registry, rows from
    its offline store (latest per entity in the window), and the materialization
    interval is recorded in the registry as ``store.materialize`` would. Returns rows
    written per view.
    """
    config = store.config
    provider = store._get_provider()
    online = PackedOnlineStore()
    views = [store.get_feature_view(n) for n in feature_views] if feature_views else [
        v for v in store.list_feature_views() if v.online]
    written: dict[str, int] = {}
    for view in views:
        written[view.name] = _materialize_view(config, provider.offline_store, view, start_date, end_date)
        store.registry.apply_materialization(view, config.project, _aware(start_date), _aware(end_date))
        if console is not None:
            console.print(f"materialized {written[view.name]:,} rows of {view.name}")
    return written


def _materialize_view(config: RepoConfig, offline_store: Any, view: FeatureView, start_date: datetime,
                      end_date: datetime) -> int:
    """The latest offline row per entity in the window, as Arrow, packed and written in bulk."""
    from feast.utils import _run_pyarrow_field_mapping

    src = view.batch_source
    job = offline_store.pull_latest_from_table_or_query(
        config=config, data_source=src, join_key_columns=[e.name for e in view.entity_columns],
        feature_name_columns=[f.name for f in view.features], timestamp_field=src.timestamp_field,
        created_timestamp_column=src.created_timestamp_column or None,
        start_date=_aware(start_date), end_date=_aware(end_date))
    table = job.to_arrow()
    if src.field_mapping:
        table = _run_pyarrow_field_mapping(table, src.field_mapping)
    return PackedOnlineStore().write_arrow(config, view, table)


class PackedComputeEngineConfig(FeastConfigBaseModel):
    """``batch_engine: {type: feature_store.online_store.PackedComputeEngine}``."""

    type: StrictStr = "feature_store.online_store.PackedComputeEngine"


class PackedComputeEngine(LocalComputeEngine):
    """Feast's local engine, except that plain feature views bound for the packed store skip protos.

    Feast's engine turns every offline value into a ``ValueProto`` before
    ``online_write_batch``; this one hands the Arrow table to ``write_arrow``, so
    ``feast materialize`` runs at the speed of :func:`materialize_packed`. Anything else
    (another online store, stream or batch views with transformations) goes through Feast.
    """

    def _materialize_one(self, registry: Any, task: Any, **kwargs: Any) -> Any:
        from feast.infra.common.materialization_job import MaterializationJobStatus
        from feast.infra.compute_engines.local.job import LocalMaterializationJob

        view = task.feature_view
        if (not isinstance(self.online_store, PackedOnlineStore) or type(view) is not FeatureView
                or not view.online or not task.only_latest or view.offline):
            return super()._materialize_one(registry, task, **kwargs)
        job_id = f"{view.name}-{task.start_time}-{task.end_time}"
        try:
            _materialize_view(self.repo_config, self.offline_store, view, task.start_time, task.end_time)
        except Exception as exc:  # reported through the job, as Feast's engines do
            return LocalMaterializationJob(job_id=job_id, status=MaterializationJobStatus.ERROR, error=exc)
        return LocalMaterializationJob(job_id=job_id, status=MaterializationJobStatus.SUCCEEDED)


def _aware(ts: datetime) -> datetime:
    return ts if ts.tzinfo else ts.replace(tzinfo=timezone.utc)
