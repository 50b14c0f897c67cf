"""Batch feature readers for the server: the packed reader and Feast's own path.

``PackedReader`` reads the records :mod:`feature_store.online_store` writes: the keys of
every view of a request in one round trip (one Redis MGET, or one LMDB transaction).
When every key is found the records of an entity sit side by side, so the whole reply
is decoded with one ``np.frombuffer`` of a structured dtype; otherwise view by view.
The only Python loops are over feature views. It
decides "found" exactly as the store's ``online_read`` does (TTL, schema tag), so it
returns what Feast's ``get_online_features`` returns on the same store.
``FeastReader`` goes through ``get_online_features``: the reference for parity tests
and the fallback when another online store is configured.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Literal, Sequence

import numpy as np

from feature_store.batch import FeatureBatch
from feature_store.errors import OnlineStoreUnavailable
from feature_store.feast_compat import python_values
from feature_store.online_store.codec import EXPIRED, OK, SCHEMA, decode
from feature_store.online_store.feast_store import kv_store_for
from feature_store.online_store.kv import KeyValueStore, Replies
from feature_store.online_store.layout import (
    HEADER,
    ViewLayout,
    key_prefix,
    layout_for,
    now_us,
    view_prefix,
)

OnMissing = Literal["defaults", "not_found"]
Features = str | Sequence[str]


def resolve_features(store: Any, features: Features) -> list[tuple[Any, list[str]]]:
    """(FeatureView, feature names) per view, from a feature service name or "view:feature" refs."""
    if isinstance(features, str) and ":" not in features:
        service = store.get_feature_service(features)
        pairs = [(p.name, [f.name for f in p.features]) for p in service.feature_view_projections]
    else:
        refs = [features] if isinstance(features, str) else list(features)
        grouped: dict[str, list[str]] = {}
        for ref in refs:
            view, _, name = ref.partition(":")
            grouped.setdefault(view, []).append(name)
        pairs = list(grouped.items())
    return [(store.get_feature_view(view), names) for view, names in pairs]


def _feast_features(store: Any, features: Features) -> Any:
    if isinstance(features, str) and ":" not in features:
        return store.get_feature_service(features)
    return [features] if isinstance(features, str) else list(features)


@dataclass(frozen=True)
class _Plan:
    """One view of a read: its layout, key prefix, and where its columns go."""

    layout: ViewLayout
    prefix: bytes
    cols: np.ndarray | None  # requested features' positions in the record; None: all, in order
    out: slice  # their columns in the output matrix
    defaults: np.ndarray  # (requested,) float32


@dataclass(frozen=True)
class _Block:
    """One entity's records of every view as one structured dtype, for complete reads.

    When every key was found the reply is N rows of the same bytes-per-entity, so one
    ``np.frombuffer`` gives each view's tag, time and features as strided fields: no
    per-view join, no per-view decode. Views of float32 or float64 alike.
    """

    dtype: np.dtype  # fields t<v> (tag), s<v> (event time, us), v<v> (features) per view
    plans: tuple[_Plan, ...]

    @classmethod
    def of(cls, plans: list[_Plan]) -> "_Block":
        names: list[str] = []
        formats: list[Any] = []
        offsets: list[int] = []
        at = 0
        for v, plan in enumerate(plans):
            names += [f"t{v}", f"s{v}", f"v{v}"]
            formats += [HEADER["tag"], HEADER["ts"], plan.layout.dtype["v"]]
            offsets += [
                at + HEADER.fields["tag"][1],
                at + HEADER.fields["ts"][1],
                at + HEADER.itemsize,
            ]
            at += plan.layout.size
        return cls(
            np.dtype({"names": names, "formats": formats, "offsets": offsets, "itemsize": at}),
            tuple(plans),
        )


def _finish(values: np.ndarray, view_found: np.ndarray, on_missing: OnMissing) -> np.ndarray:
    """found per row: all views present, or (defaults) at least one view present."""
    return view_found.any(axis=1) if on_missing == "defaults" else view_found.all(axis=1)


class PackedReader:
    """N entity ids -> ``FeatureBatch`` from the packed online store, no per-entity loop."""

    reload_interval_s = 1.0

    def __init__(
        self,
        store: Any,
        features: Features,
        kv: KeyValueStore,
        on_missing_view: OnMissing,
        registry_ttl_s: float = 10.0,
    ) -> None:
        self._store = store
        self._features = features
        self._kv = kv
        self.on_missing_view = on_missing_view
        self.registry_ttl_s = registry_ttl_s
        self._last_reload = time.monotonic()
        self._last_mismatch = -float("inf")
        self._plan()

    @classmethod
    def from_store(
        cls,
        store: Any,
        features: Features,
        *,
        on_missing_view: OnMissing = "not_found",
        timeout_s: float | None = None,
        registry_ttl_s: float = 10.0,
    ) -> "PackedReader":
        """A reader on ``store``'s packed online store (``features``: service name or refs).

        The registry is re-read every ``registry_ttl_s`` and whenever a record with another
        schema shows up, so a ``feast apply`` elsewhere is picked up without a restart.
        """
        return cls(
            store, features, kv_store_for(store.config, timeout_s), on_missing_view, registry_ttl_s
        )

    def _plan(self) -> None:
        prefix = key_prefix(self._store.config)
        plans, names, start = [], [], 0
        for view, feats in resolve_features(self._store, self._features):
            layout = layout_for(view)
            if not layout.packed:
                raise ValueError(
                    f"view {view.name} is not all-float ({set(layout.types)}); "
                    "read it with FeastReader"
                )
            cols = [layout.features.index(f) for f in feats]
            defaults = np.array([layout.defaults[c] for c in cols], np.float32)
            whole = cols == list(range(len(layout.features)))
            out = slice(start, start + len(feats))
            start += len(feats)
            plans.append(
                _Plan(
                    layout,
                    view_prefix(prefix, view.name),
                    None if whole else np.array(cols, np.intp),
                    out,
                    defaults,
                )
            )
            names.extend(feats)
        self._plans = plans
        self._prefixes = [p.prefix for p in plans]
        self._block = _Block.of(plans)
        self.names: tuple[str, ...] = tuple(names)
        self.views: tuple[str, ...] = tuple(p.layout.name for p in plans)

    def read(self, entity_ids: np.ndarray) -> FeatureBatch:
        """Features of ``entity_ids`` (int64, any order, duplicates allowed), in that order.

        Rows written under another schema are not found; seeing one re-reads the registry
        (at most once a second) so a new schema is picked up without a restart.
        """
        now = time.monotonic()
        if now - self._last_reload > self.registry_ttl_s:
            self.refresh()
        batch = self._read(entity_ids)
        if batch.schema_mismatch.any() and now - self._last_mismatch > self.reload_interval_s:
            self._last_mismatch = now
            if self.refresh():
                batch = self._read(entity_ids)
        return batch

    def refresh(self) -> bool:
        """Re-read the registry and re-plan; True when a view's layout changed."""
        self._last_reload = time.monotonic()
        old = [p.layout.tag for p in self._plans]
        self._store.refresh_registry()
        self._plan()
        return old != [p.layout.tag for p in self._plans]

    def _read(self, entity_ids: np.ndarray) -> FeatureBatch:
        ids = np.ascontiguousarray(entity_ids, dtype=np.int64).ravel()
        fetched = self._kv.fetch(self._prefixes, ids)
        now = now_us()
        if fetched.joined is not None:
            batch = self._read_block(fetched.joined, len(ids), now)
            if batch is not None:
                return batch
        return self._read_views(fetched.views, len(ids), now)

    def _read_block(self, joined: bytes, n: int, now: int) -> FeatureBatch | None:
        """One pass over a complete read; None when a record is not this schema's (then the read
        goes view by view)."""
        block = self._block
        if len(joined) != n * block.dtype.itemsize:
            return None
        rec = np.frombuffer(joined, block.dtype)
        for v, plan in enumerate(
            block.plans
        ):  # tags fix sizes: all right, every record sits where assumed
            if not (rec[f"t{v}"] == plan.layout.tag).all():
                return None
        values = np.empty((n, len(self.names)), np.float32)
        ts = np.empty((n, len(block.plans)), np.float64)
        ok = np.ones((n, len(block.plans)), bool)
        for v, plan in enumerate(block.plans):
            us = rec[f"s{v}"]
            values[:, plan.out] = rec[f"v{v}"] if plan.cols is None else rec[f"v{v}"][:, plan.cols]
            ts[:, v] = us
            if plan.layout.ttl_us:
                ok[:, v] = us >= now - plan.layout.ttl_us
        ts /= 1e6
        if ok.all():
            return FeatureBatch(
                values,
                np.ones(n, bool),
                ts,
                self.names,
                self.views,
                view_found=ok,
                expired=~ok,
                schema_mismatch=~ok,
            )
        expired = ~ok
        for v, plan in enumerate(block.plans):
            values[expired[:, v], plan.out] = (
                plan.defaults if self.on_missing_view == "defaults" else np.nan
            )
        ts[expired] = np.nan
        return FeatureBatch(
            values,
            _finish(values, ok, self.on_missing_view),
            ts,
            self.names,
            self.views,
            view_found=ok,
            expired=expired,
            schema_mismatch=np.zeros_like(ok),
        )

    def _read_views(self, fetched: list[Replies], n: int, now: int) -> FeatureBatch:
        nv = len(self._plans)
        values = np.empty((n, len(self.names)), np.float32)
        status = np.empty((n, nv), np.int8)
        ts = np.empty((n, nv), np.float64)
        all_ok = True
        for v, (plan, got) in enumerate(zip(self._plans, fetched)):
            dec = decode(plan.layout, got, now)
            values[:, plan.out] = dec.values if plan.cols is None else dec.values[:, plan.cols]
            status[:, v] = dec.status
            ts[:, v] = dec.ts_us
            if not dec.all_ok:
                all_ok = False
                values[dec.status != OK, plan.out] = (
                    plan.defaults if self.on_missing_view == "defaults" else np.nan
                )
        ts /= 1e6
        if all_ok:
            view_found = np.ones((n, nv), bool)
            return FeatureBatch(
                values,
                np.ones(n, bool),
                ts,
                self.names,
                self.views,
                view_found=view_found,
                expired=~view_found,
                schema_mismatch=~view_found,
            )
        view_found = status == OK
        ts[~view_found] = np.nan
        return FeatureBatch(
            values,
            _finish(values, view_found, self.on_missing_view),
            ts,
            self.names,
            self.views,
            view_found=view_found,
            expired=status == EXPIRED,
            schema_mismatch=status == SCHEMA,
        )


class FeastReader:
    """The same contract through Feast's ``get_online_features`` (slow; any online store)."""

    def __init__(self, store: Any, features: Features, on_missing_view: OnMissing) -> None:
        self._store = store
        self._features = _feast_features(store, features)
        self.on_missing_view = on_missing_view
        resolved = resolve_features(store, features)
        self._join_key = resolved[0][0].entity_columns[0].name
        self._groups = [
            (
                view.name,
                feats,
                np.array(
                    [layout_for(view).defaults[layout_for(view).features.index(f)] for f in feats],
                    np.float32,
                ),
            )
            for view, feats in resolved
        ]
        self.names: tuple[str, ...] = tuple(f for _, feats, _ in self._groups for f in feats)
        self.views: tuple[str, ...] = tuple(v for v, _, _ in self._groups)

    @classmethod
    def from_store(
        cls,
        store: Any,
        features: Features,
        *,
        on_missing_view: OnMissing = "not_found",
        timeout_s: float | None = None,
    ) -> "FeastReader":
        """``timeout_s`` is accepted for symmetry; Feast's client settings apply."""
        return cls(store, features, on_missing_view)

    def read(self, entity_ids: np.ndarray) -> FeatureBatch:
        ids = np.ascontiguousarray(entity_ids, dtype=np.int64).ravel()
        proto = self._online_proto(ids)
        index = {name: i for i, name in enumerate(proto.metadata.feature_names.val)}
        n = len(ids)
        values = np.empty((n, len(self.names)), np.float32)
        view_found = np.zeros((n, len(self.views)), bool)
        ts = np.full((n, len(self.views)), np.nan)
        col = 0
        for v, (_, feats, defaults) in enumerate(self._groups):
            view_found[:, v], ts[:, v] = _presence(proto.results[index[feats[0]]])
            for j, feat in enumerate(feats):
                py = python_values(proto.results[index[feat]].values)
                values[:, col] = [np.nan if x is None else float(x) for x in py]
                if self.on_missing_view == "defaults":
                    values[~view_found[:, v], col] = defaults[j]
                col += 1
        return FeatureBatch(
            values,
            _finish(values, view_found, self.on_missing_view),
            ts,
            self.names,
            self.views,
            view_found=view_found,
        )

    def _online_proto(self, ids: np.ndarray) -> Any:
        """Feast's response proto; a Redis or socket failure is the online store being down
        (503), not a bug."""
        try:
            resp = self._store.get_online_features(
                features=self._features, entity_rows={self._join_key: ids.tolist()}
            )
        except Exception as exc:
            if type(exc).__module__.startswith("redis") or isinstance(exc, OSError):
                raise OnlineStoreUnavailable("feature store", str(exc)) from exc
            raise
        return resp.proto


def _presence(result: Any) -> tuple[np.ndarray, np.ndarray]:
    """(found, event time in epoch seconds or NaN) per row, from one feature of a view's results."""
    from feast.protos.feast.serving.ServingService_pb2 import FieldStatus

    found = np.array([s == FieldStatus.PRESENT for s in result.statuses], bool)
    us = np.array(
        [t.seconds * 1_000_000 + t.nanos // 1000 for t in result.event_timestamps], np.int64
    )
    return found, np.where(found, us / 1e6, np.nan)
