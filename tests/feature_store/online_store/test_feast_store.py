"""PackedOnlineStore through Feast's own API: materialize, push, TTL, schema change, view
deletion."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from feast import FeatureView, Field
from feast.types import Float32

from loadtests.bench.features import ACTIVITY, demo_objects
from feature_store.online_store.layout import key_prefix, layout_for, view_prefix
from feature_store.online_store.feast_store import kv_store_for
from feature_store.reader import FeastReader, PackedReader

from ..conftest import CUSTOMERS, NOW


def _fresh(df: pd.DataFrame, ttl_days: float) -> pd.Series:
    return df["event_timestamp"] >= pd.Timestamp(NOW) - pd.Timedelta(days=ttl_days)


def test_the_yaml_type_strings_resolve_the_way_feast_looks_them_up() -> None:
    """The yamls name the package; Feast finds the classes, their Config classes, and the store
    from its config."""
    from feast.infra.online_stores.helpers import get_online_store_from_config
    from feast.repo_config import get_batch_engine_config_from_type, get_online_config_from_type

    from feature_store.online_store import (
        PackedComputeEngineConfig,
        PackedOnlineStore,
        PackedOnlineStoreConfig,
    )

    root = Path(__file__).resolve().parents[3] / "feature_store"
    for name in ("feature_store.yaml", "feature_store.redis.yaml"):
        text = (root / name).read_text()
        assert "type: feature_store.online_store.PackedOnlineStore" in text
        assert "type: feature_store.online_store.PackedComputeEngine" in text
    config_cls = get_online_config_from_type("feature_store.online_store.PackedOnlineStore")
    assert config_cls is PackedOnlineStoreConfig
    assert isinstance(get_online_store_from_config(config_cls()), PackedOnlineStore)
    engine_config = get_batch_engine_config_from_type(
        "feature_store.online_store.PackedComputeEngine"
    )
    assert engine_config is PackedComputeEngineConfig


def test_feast_materialize_and_get_online_features(make_store, demo_data) -> None:
    """Feast's own materialize writes packed rows; get_online_features reads them, TTL applied."""
    store = make_store("embedded", materialize=False)
    store.materialize(NOW - timedelta(days=400), NOW + timedelta(minutes=1))
    activity = demo_data[1]["customer_activity"]
    ids = [1, 2, 3, 4, 5, 6, 7, 8, CUSTOMERS + 5]
    got = store.get_online_features(
        features=[f"customer_activity:{f}" for f in ACTIVITY[:3]] + ["customer_contact:email"],
        entity_rows={"customer_id": ids},
    ).to_dict()
    truth = activity.set_index("customer_id")
    for i, cid in enumerate(ids[:-1]):
        if _fresh(truth.loc[[cid]], 30).iloc[0]:
            assert got["a_00"][i] == pytest.approx(float(truth.loc[cid, "a_00"]), abs=0)
        else:
            assert got["a_00"][i] is None  # expired: not found
        assert got["email"][i] == f"c{cid}@example.com"
    assert got["a_00"][-1] is None and got["email"][-1] is None


def test_push_is_visible_to_the_next_read(store) -> None:
    reader = PackedReader.from_store(store, "churn_model")
    row = {
        "customer_id": [42],
        "event_timestamp": [pd.Timestamp(NOW)],
        "created": [pd.Timestamp(NOW)],
        **{f: [float(i) + 0.5] for i, f in enumerate(ACTIVITY)},
    }
    store.push("customer_activity_push", pd.DataFrame(row))
    batch = reader.read(np.array([42], np.int64))
    np.testing.assert_array_equal(batch.columns(list(ACTIVITY))[0], np.arange(20) + 0.5)
    assert batch.view_found[0, batch.views.index("customer_activity")]
    ts = batch.event_ts[0, batch.views.index("customer_activity")]
    assert ts == pytest.approx(NOW.timestamp(), abs=1e-6)


def test_ttl_expired_rows_are_not_found(store) -> None:
    old = pd.Timestamp(NOW) - pd.Timedelta(days=31)
    row = {
        "customer_id": [7],
        "event_timestamp": [old],
        "created": [old],
        **{f: [1.0] for f in ACTIVITY},
    }
    store.push("customer_activity_push", pd.DataFrame(row))
    ids = np.array([7], np.int64)
    batch = PackedReader.from_store(store, "churn_model").read(ids)
    v = batch.views.index("customer_activity")
    assert batch.expired[0, v] and not batch.view_found[0, v] and not batch.found[0]
    assert np.isnan(batch.columns(list(ACTIVITY))).all() and np.isnan(batch.event_ts[0, v])
    assert FeastReader.from_store(store, "churn_model").read(ids).found[0] == batch.found[0]

    with_defaults = PackedReader.from_store(store, "churn_model", on_missing_view="defaults").read(
        ids
    )
    assert with_defaults.found[0] and not with_defaults.view_found[0, v]
    np.testing.assert_array_equal(with_defaults.columns(list(ACTIVITY)), 0.0)


def test_schema_change_is_never_decoded_with_the_old_layout(store) -> None:
    reader = PackedReader.from_store(store, "churn_model")
    ids = np.arange(1, 200, dtype=np.int64)
    before = reader.read(ids)
    v = before.views.index("customer_activity")
    had = before.view_found[:, v]
    assert had.any()

    objs = {o.name: o for o in demo_objects(_data_dir(store))}
    old = objs["customer_activity"]
    new_feats = ("a_new", *ACTIVITY)  # one more feature, first: every offset moves
    changed = FeatureView(
        name=old.name,
        entities=[objs["customer"]],
        ttl=old.ttl,
        source=objs["customer_activity_push"],
        schema=[Field(name=f, dtype=Float32) for f in new_feats],
    )
    store.apply([changed])
    assert layout_for(changed).tag != layout_for(old).tag
    row = {
        "customer_id": [5],
        "event_timestamp": [pd.Timestamp(NOW)],
        "created": [pd.Timestamp(NOW)],
        **{f: [float(i)] for i, f in enumerate(new_feats)},
    }
    store.push("customer_activity_push", pd.DataFrame(row))

    # the reader still holds the old layout: the new record's tag tells it to reload
    after = reader.read(ids)
    assert after.view_found[4, v] and after.values[4, after.names.index("a_00")] == 1.0
    stale = had.copy()
    stale[4] = False
    assert after.schema_mismatch[stale, v].all() and not after.view_found[stale, v].any()
    assert np.isnan(after.columns(list(ACTIVITY))[stale]).all()
    feast_view = FeastReader.from_store(store, "churn_model").read(ids)
    np.testing.assert_array_equal(feast_view.found, after.found)
    np.testing.assert_array_equal(feast_view.values, after.values)


def _data_dir(store) -> Path:
    return Path(store.get_data_source("customer_profile_source").path).parent


def test_deleting_a_view_drops_its_rows(store) -> None:
    prefix = view_prefix(key_prefix(store.config), "customer_contact")
    assert kv_store_for(store.config).fetch([prefix], np.arange(1, 6)).views[0].found.all()
    store.apply(
        [],
        objects_to_delete=[
            store.get_feature_service("email_writer"),
            store.get_feature_view("customer_contact"),
        ],
        partial=False,
    )
    assert not kv_store_for(store.config).fetch([prefix], np.arange(1, 6)).views[0].found.any()


def test_one_store_per_address_and_timeout(make_store) -> None:
    """Readers and writers of a process share one LMDB environment (LMDB allows no more)."""
    store = make_store("embedded", materialize=False)
    assert kv_store_for(store.config) is kv_store_for(store.config)
    assert kv_store_for(store.config, 0.5) is kv_store_for(
        store.config
    )  # the timeout is Redis's only
