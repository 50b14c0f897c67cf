"""Materialization without protos: offline rows as Arrow, packed and written in bulk.

Feast's own path turns every offline value into a ``ValueProto`` before
``online_write_batch``; for all-float views that dominates ``feast materialize``. Both
entry points here, :func:`materialize_packed` (called from Python) and
:class:`PackedComputeEngine` (``batch_engine:`` in feature_store.yaml, so the plain
``feast materialize`` CLI gets it too), hand Arrow straight to ``write_arrow``.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Sequence

from feast import FeatureStore, FeatureView, RepoConfig
from feast.repo_config import FeastConfigBaseModel
from pydantic import StrictStr

from feature_store.feast_compat import LatestRowsEngine, apply_field_mapping, offline_store_of
from feature_store.online_store.feast_store import PackedOnlineStore


def materialize_packed(
    store: FeatureStore,
    start_date: datetime,
    end_date: datetime,
    feature_views: Sequence[str] | None = None,
    console: Any = None,
) -> dict[str, int]:
    """``feast materialize`` without protos: offline rows as Arrow, packed, written in bulk.

    Feast stays the source of truth: views and sources come from its registry, rows from
    its offline store (latest per entity in the window), and the materialization
    interval is recorded in the registry as ``store.materialize`` would. Returns rows
    written per view.
    """
    config = store.config
    offline_store = offline_store_of(store)
    views = (
        [store.get_feature_view(n) for n in feature_views]
        if feature_views
        else [v for v in store.list_feature_views() if v.online]
    )
    written: dict[str, int] = {}
    for view in views:
        written[view.name] = materialize_view(config, offline_store, view, start_date, end_date)
        store.registry.apply_materialization(
            view, config.project, _aware(start_date), _aware(end_date)
        )
        if console is not None:
            console.print(f"materialized {written[view.name]:,} rows of {view.name}")
    return written


def materialize_view(
    config: RepoConfig,
    offline_store: Any,
    view: FeatureView,
    start_date: datetime,
    end_date: datetime,
) -> int:
    """The latest offline row per entity in the window, as Arrow, packed and written in bulk."""
    src = view.batch_source
    job = offline_store.pull_latest_from_table_or_query(
        config=config,
        data_source=src,
        join_key_columns=[e.name for e in view.entity_columns],
        feature_name_columns=[f.name for f in view.features],
        timestamp_field=src.timestamp_field,
        created_timestamp_column=src.created_timestamp_column or None,
        start_date=_aware(start_date),
        end_date=_aware(end_date),
    )
    table = job.to_arrow()
    if src.field_mapping:
        table = apply_field_mapping(table, src.field_mapping)
    return PackedOnlineStore().write_arrow(config, view, table)


class PackedComputeEngineConfig(FeastConfigBaseModel):
    """``batch_engine: {type: feature_store.online_store.PackedComputeEngine}``."""

    type: StrictStr = "feature_store.online_store.PackedComputeEngine"


class PackedComputeEngine(LatestRowsEngine):
    """Feast's local engine, except that plain feature views bound for the packed store skip protos.

    Anything else (another online store, stream or batch views with transformations,
    offline-only views) goes through Feast's engine unchanged.
    """

    def takes_latest(self, view: Any) -> bool:
        return (
            isinstance(self.online_store, PackedOnlineStore)
            and type(view) is FeatureView
            and view.online
            and not view.offline
        )

    def materialize_latest(self, view: FeatureView, start: datetime, end: datetime) -> None:
        materialize_view(self.repo_config, self.offline_store, view, start, end)


def _aware(ts: datetime) -> datetime:
    """Feast's offline stores compare with aware timestamps: a naive one is UTC."""
    return ts if ts.tzinfo else ts.replace(tzinfo=timezone.utc)
