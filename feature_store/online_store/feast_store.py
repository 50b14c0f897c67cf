"""The Feast side of the packed store: its yaml config, the ``OnlineStore`` adapter, and
which key-value store a repo config points at.

Feast finds the adapter from the config's module: ``PackedOnlineStoreConfig`` and
``PackedOnlineStore`` must live in the same module (Feast's
``get_online_store_from_config`` strips "Config" and looks the store up there).
"""

from __future__ import annotations

import os
import threading
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Literal, Optional, Sequence

import numpy as np
import pyarrow as pa
from feast import Entity, FeatureView, RepoConfig
from feast.infra.online_stores.online_store import OnlineStore
from feast.protos.feast.types.EntityKey_pb2 import EntityKey as EntityKeyProto
from feast.protos.feast.types.Value_pb2 import Value as ValueProto
from feast.repo_config import FeastConfigBaseModel
from pydantic import StrictStr

from feature_store.feast_compat import columns_to_value_protos
from feature_store.online_store.codec import (
    OK,
    Decoded,
    decode,
    decode_generic,
    encode_generic,
    encode_packed,
    values_from_protos,
)
from feature_store.online_store.kv import KeyValueStore
from feature_store.online_store.layout import (
    ViewLayout,
    build_keys,
    from_us,
    key_prefix,
    layout_for,
    now_us,
    to_us,
    view_prefix,
)
from feature_store.online_store.lmdb_store import LmdbStore
from feature_store.online_store.redis_store import RedisStore, url_from_connection_string
from feature_store.online_store.suppression import Suppression, load

Row = tuple[Optional[datetime], Optional[dict[str, ValueProto]]]


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
    suppression_file: Optional[StrictStr] = "data/suppressed.json"
    """erased customers' keyed pseudonyms (exported by the server); writes drop them"""


_stores: dict[tuple[Any, ...], KeyValueStore] = {}
_stores_lock = threading.Lock()


def kv_store_for(config: RepoConfig, timeout_s: float | None = None) -> KeyValueStore:
    """The (process-wide, cached) key-value store a repo config points at.

    Cached so that every reader and writer in a process shares one LMDB environment (LMDB
    allows no more) and one Redis pool per address and timeout.
    """
    cfg = config.online_store
    if not isinstance(cfg, PackedOnlineStoreConfig):
        raise ValueError(f"online_store is {type(cfg).__name__}, not PackedOnlineStoreConfig")
    timeout = timeout_s if timeout_s is not None else cfg.timeout_s
    key, make = _lmdb(config, cfg) if cfg.backend == "embedded" else _redis(cfg, timeout)
    with _stores_lock:
        store = _stores.get(key)
        if store is None:
            store = _stores[key] = make()
    return store


def _lmdb(
    config: RepoConfig, cfg: PackedOnlineStoreConfig
) -> tuple[tuple[Any, ...], Callable[[], KeyValueStore]]:
    """Cache key and factory of the embedded store; a relative path is relative to the repo."""
    path = Path(cfg.path)
    if not path.is_absolute():
        path = Path(config.repo_path or os.getcwd()) / path
    return ("lmdb", str(path.resolve())), lambda: LmdbStore(path, cfg.map_size_mb)


def _redis(
    cfg: PackedOnlineStoreConfig, timeout: float
) -> tuple[tuple[Any, ...], Callable[[], KeyValueStore]]:
    """Cache key and factory of the Redis store at the config's address, with this read timeout."""
    address = cfg.connection_string or cfg.url
    url = url_from_connection_string(cfg.connection_string) if cfg.connection_string else cfg.url

    def make() -> KeyValueStore:
        return RedisStore(
            url,
            address=address,
            redis_type=cfg.redis_type,
            sentinel_master=cfg.sentinel_master,
            timeout_s=timeout,
            write_timeout_s=cfg.write_timeout_s,
            write_chunk=cfg.write_chunk,
        )

    return ("redis", cfg.redis_type, address, cfg.sentinel_master, timeout), make


def _suppression(config: RepoConfig) -> Suppression | None:
    name = config.online_store.suppression_file
    if not name:
        return None
    path = Path(name)
    return load(path if path.is_absolute() else Path(config.repo_path or os.getcwd()) / path)


def entity_ids(entity_keys: Sequence[EntityKeyProto]) -> np.ndarray:
    """Int64 ids from Feast entity keys (one integer join key, as our entity has)."""
    if entity_keys and len(entity_keys[0].entity_values) != 1:
        raise ValueError("PackedOnlineStore supports one integer join key per entity")
    vals = [ek.entity_values[0] for ek in entity_keys]
    kind = vals[0].WhichOneof("val") if vals else "int64_val"
    if kind not in ("int64_val", "int32_val"):
        raise ValueError(f"PackedOnlineStore needs an Int64/Int32 join key, got {kind}")
    return np.fromiter((getattr(v, kind) for v in vals), np.int64, len(vals))


class PackedOnlineStore(OnlineStore):
    """Feast online store (``type: feature_store.online_store.PackedOnlineStore``).

    One packed record per (entity, view) instead of Feast's hash of protos per entity, so
    the server's batch reader decodes N rows at once; Feast's own reads and writes keep
    working through this adapter (TTL and schema checks included).
    """

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
            records = encode_packed(
                layout, ts, values_from_protos(layout, [row[1] for row in data])
            )
        else:
            records = [encode_generic(layout, int(t), row[1]) for t, row in zip(ts.tolist(), data)]
        self._write(config, layout, ids, ts, records)
        if progress:
            progress(len(data))

    def write_arrow(
        self,
        config: RepoConfig,
        table: FeatureView,
        data: pa.Table,
        timestamp_field: str | None = None,
    ) -> int:
        """Write an Arrow table of rows (join key, timestamp, features) without protos.

        The vectorized path of ``materialize_packed``: packed views never build a
        ``ValueProto``. Returns the rows written.
        """
        layout = layout_for(table)
        if data.num_rows == 0:
            return 0
        ids = data.column(table.entity_columns[0].name).to_numpy().astype(np.int64)
        ts_col = timestamp_field or table.batch_source.timestamp_field
        ts = (
            data.column(ts_col)
            .cast(pa.timestamp("us", tz="UTC"))
            .cast(pa.int64())
            .to_numpy(zero_copy_only=False)
        )
        if layout.packed:
            records = encode_packed(layout, ts, _float_matrix(layout, data, len(ids)))
        else:
            protos = columns_to_value_protos(data, table)
            rows = [
                dict(zip(layout.features, vals))
                for vals in zip(*(protos[f] for f in layout.features))
            ]
            records = [encode_generic(layout, int(t), r) for t, r in zip(ts.tolist(), rows)]
        self._write(config, layout, ids, ts, records)
        return len(ids)

    @staticmethod
    def _write(
        config: RepoConfig,
        layout: ViewLayout,
        ids: np.ndarray,
        ts: np.ndarray,
        records: list[bytes],
    ) -> None:
        """Write records, keeping only each entity's latest row of the batch and no
        suppressed (erased) customer."""
        suppressed = _suppression(config)
        if suppressed is not None:
            keep = ~suppressed.mask(ids)
            if not keep.all():
                ids, ts = ids[keep], ts[keep]
                records = np.asarray(records + [b""], object)[:-1][keep].tolist()
        if len(np.unique(ids)) != len(ids):
            order = np.lexsort((ts, ids))  # last of each id = newest
            last = np.r_[ids[order][1:] != ids[order][:-1], True]
            keep = order[last]
            ids = ids[keep]
            records = np.asarray(records + [b""], object)[:-1][keep].tolist()
        keys = build_keys(view_prefix(key_prefix(config), layout.name), ids)
        kv_store_for(config).write(keys, records)

    def online_read(
        self,
        config: RepoConfig,
        table: FeatureView,
        entity_keys: list[EntityKeyProto],
        requested_features: Optional[list[str]] = None,
    ) -> list[Row]:
        if not entity_keys:
            return []
        layout = layout_for(table)
        ids = entity_ids(entity_keys)
        fetched = (
            kv_store_for(config).fetch([view_prefix(key_prefix(config), layout.name)], ids).views[0]
        )
        dec = decode(layout, fetched, now_us())
        names = [n for n in layout.features if not requested_features or n in requested_features]
        if layout.packed:
            return _packed_rows(layout, dec, names)
        return _generic_rows(layout, dec, fetched.found, names)

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
        self.teardown(config, tables_to_delete, entities_to_delete)

    def teardown(
        self, config: RepoConfig, tables: Sequence[FeatureView], entities: Sequence[Entity]
    ) -> None:
        store = kv_store_for(config)
        for view in tables:
            store.delete_prefix(view_prefix(key_prefix(config), view.name))


def _float_matrix(layout: ViewLayout, data: pa.Table, n: int) -> np.ndarray:
    """(N, F) values of a packed view's feature columns, in the layout's order and dtype."""
    cols = [data.column(f).to_numpy(zero_copy_only=False) for f in layout.features]
    return np.column_stack(cols).astype(layout.dtype["v"].base) if cols else np.zeros((n, 0))


def _packed_rows(layout: ViewLayout, dec: Decoded, names: list[str]) -> list[Row]:
    """Feast's (event time, protos) per row of a packed view; NaN reads as an unset value."""
    out: list[Row] = [(None, None)] * len(dec.status)
    ok = dec.status == OK
    cols = [layout.features.index(n) for n in names]
    field = layout.value_field
    vals = dec.values[ok][:, cols].tolist()
    for i, ts, row in zip(np.flatnonzero(ok).tolist(), dec.ts_us[ok].tolist(), vals):
        out[i] = (
            from_us(ts),
            {n: ValueProto(**{field: v}) if v == v else ValueProto() for n, v in zip(names, row)},
        )
    return out


def _generic_rows(
    layout: ViewLayout, dec: Decoded, found: np.ndarray, names: list[str]
) -> list[Row]:
    """Feast's (event time, protos) per row of a generic view: only OK rows are parsed."""
    out: list[Row] = [(None, None)] * len(found)
    ok = dec.status == OK
    for rec, i in zip(dec.records or [], np.flatnonzero(found).tolist()):
        if ok[i]:
            full = decode_generic(layout, rec)
            out[i] = (from_us(int(dec.ts_us[i])), {n: full[n] for n in names})
    return out
