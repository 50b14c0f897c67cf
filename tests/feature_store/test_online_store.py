"""PackedOnlineStore through Feast's own API: materialize, push, TTL, schema change, Redis outages."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
import redis
from feast import FeatureView, Field
from feast.types import Float32

from feature_store.bench import ACTIVITY, demo_objects
from feature_store.online_store import layout_for, materialize_packed
from feature_store.reader import FeastReader, PackedReader
from serving.errors import DependencyUnavailable

from .conftest import CUSTOMERS, NOW


def _fresh(df: pd.DataFrame, ttl_days: float) -> pd.Series:
    return df["event_timestamp"] >= pd.Timestamp(NOW) - pd.Timedelta(days=ttl_days)


def test_feast_materialize_and_get_online_features(make_store, demo_data) -> None:
    """Feast's own materialize writes packed rows; get_online_features reads them, TTL applied."""
    store = make_store("embedded", materialize=False)
    store.materialize(NOW - timedelta(days=400), NOW + timedelta(minutes=1))
    activity = demo_data[1]["customer_activity"]
    ids = [1, 2, 3, 4, 5, 6, 7, 8, CUSTOMERS + 5]
    got = store.get_online_features(features=[f"customer_activity:{f}" for f in ACTIVITY[:3]] +
                                    ["customer_contact:email"], entity_rows={"customer_id": ids}).to_dict()
    truth = activity.set_index("customer_id")
    for i, cid in enumerate(ids[:-1]):
        if _fresh(truth.loc[[cid]], 30).iloc[0]:
            assert got["a_00"][i] == pytest.approx(float(truth.loc[cid, "a_00"]), abs=0)
        else:
            assert got["a_00"][i] is None  # expired: not found
        assert got["email"][i] == f"c{cid}@example.com"
    assert got["a_00"][-1] is None and got["email"][-1] is None


@pytest.mark.parametrize("backend", ["embedded", "redis"])
def test_feast_materialize_through_the_packed_engine_skips_protos(tmp_path, demo_data, request, monkeypatch,
                                                                  backend) -> None:
    """``batch_engine: PackedComputeEngine``: feast materialize writes from Arrow, same rows as Feast's engine."""
    from feature_store.bench import ENGINE_CLASS, make_repo, packed_config
    from feature_store.online_store import PackedOnlineStore

    url = request.getfixturevalue("redis_url") if backend == "redis" else None
    feast_engine = make_repo(tmp_path / "feast", demo_data[0], packed_config(backend, url, key_prefix="a",
                                                                              path="a.lmdb"))
    feast_engine.materialize(NOW - timedelta(days=400), NOW + timedelta(minutes=1))
    ours = make_repo(tmp_path / "ours", demo_data[0], packed_config(backend, url, key_prefix="b", path="b.lmdb"),
                     batch_engine=ENGINE_CLASS)
    monkeypatch.setattr(PackedOnlineStore, "online_write_batch", lambda *a, **k: pytest.fail("protos built"))
    ours.materialize(NOW - timedelta(days=400), NOW + timedelta(minutes=1))
    ids = np.arange(1, CUSTOMERS + 50, dtype=np.int64)
    a = PackedReader.from_store(feast_engine, "churn_model").read(ids)
    b = PackedReader.from_store(ours, "churn_model").read(ids)
    assert b.view_found.sum() > 0.8 * b.view_found.size
    np.testing.assert_array_equal(a.values, b.values)
    np.testing.assert_array_equal(a.event_ts, b.event_ts)
    view = ours.get_feature_view("customer_profile")
    assert view.materialization_intervals  # recorded in the registry as Feast's engine does
    got = ours.get_online_features(features=["customer_contact:email"], entity_rows={"customer_id": [5]}).to_dict()
    assert got["email"] == ["c5@example.com"]  # the String view went through the same engine


def test_push_is_visible_to_the_next_read(store) -> None:
    reader = PackedReader.from_store(store, "churn_model")
    row = {"customer_id": [42], "event_timestamp": [pd.Timestamp(NOW)], "created": [pd.Timestamp(NOW)],
           **{f: [float(i) + 0.5] for i, f in enumerate(ACTIVITY)}}
    store.push("customer_activity_push", pd.DataFrame(row))
    batch = reader.read(np.array([42], np.int64))
    np.testing.assert_array_equal(batch.columns(list(ACTIVITY))[0], np.arange(20) + 0.5)
    assert batch.view_found[0, batch.views.index("customer_activity")]
    ts = batch.event_ts[0, batch.views.index("customer_activity")]
    assert ts == pytest.approx(NOW.timestamp(), abs=1e-6)


def test_ttl_expired_rows_are_not_found(store) -> None:
    old = pd.Timestamp(NOW) - pd.Timedelta(days=31)
    row = {"customer_id": [7], "event_timestamp": [old], "created": [old], **{f: [1.0] for f in ACTIVITY}}
    store.push("customer_activity_push", pd.DataFrame(row))
    ids = np.array([7], np.int64)
    batch = PackedReader.from_store(store, "churn_model").read(ids)
    v = batch.views.index("customer_activity")
    assert batch.expired[0, v] and not batch.view_found[0, v] and not batch.found[0]
    assert np.isnan(batch.columns(list(ACTIVITY))).all() and np.isnan(batch.event_ts[0, v])
    assert FeastReader.from_store(store, "churn_model").read(ids).found[0] == batch.found[0]

    with_defaults = PackedReader.from_store(store, "churn_model", on_missing_view="defaults").read(ids)
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
    changed = FeatureView(name=old.name, entities=[objs["customer"]], ttl=old.ttl,
                          source=objs["customer_activity_push"],
                          schema=[Field(name=f, dtype=Float32) for f in new_feats])
    store.apply([changed])
    assert layout_for(changed).tag != layout_for(old).tag
    row = {"customer_id": [5], "event_timestamp": [pd.Timestamp(NOW)], "created": [pd.Timestamp(NOW)],
           **{f: [float(i)] for i, f in enumerate(new_feats)}}
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


def _data_dir(store):
    return __import__("pathlib").Path(store.get_data_source("customer_profile_source").path).parent


def test_redis_down_fails_fast_then_recovers(make_store, redis_server) -> None:
    store = make_store("redis")
    reader = PackedReader.from_store(store, "churn_model", timeout_s=0.2)
    ids = np.arange(1, 50, dtype=np.int64)
    assert reader.read(ids).found.any()

    redis_server.stop()
    try:
        with pytest.raises(DependencyUnavailable, match="feature store"):
            reader.read(ids)
    finally:
        redis_server.start()
    assert not reader.read(ids).found.any()  # back, empty (no persistence): rows are not found
    materialize_packed(store, NOW - timedelta(days=400), NOW + timedelta(minutes=1))
    assert reader.read(ids).found.any()


def test_slow_redis_times_out(make_store, redis_url) -> None:
    store = make_store("redis")
    reader = PackedReader.from_store(store, "churn_model", timeout_s=0.1)
    admin = redis.Redis.from_url(redis_url)
    admin.execute_command("CLIENT", "PAUSE", 1000, "ALL")
    with pytest.raises(DependencyUnavailable):
        reader.read(np.arange(1, 10, dtype=np.int64))
    other = np.arange(100, 140, dtype=np.int64)  # the timed-out reply must not answer this read
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            got = reader.read(other)
            want = FeastReader.from_store(store, "churn_model").read(other)
            np.testing.assert_array_equal(got.found, want.found)
            np.testing.assert_array_equal(got.values, want.values)
            break
        except DependencyUnavailable:
            time.sleep(0.1)
    else:
        pytest.fail("did not recover after the pause")


def test_deleting_a_view_drops_its_rows(store) -> None:
    from feature_store.online_store import backend_for, key_prefix, view_prefix

    prefix = view_prefix(key_prefix(store.config), "customer_contact")
    assert backend_for(store.config).fetch([prefix], np.arange(1, 6)).views[0].found.all()
    store.apply([], objects_to_delete=[store.get_feature_service("email_writer"),
                                       store.get_feature_view("customer_contact")], partial=False)
    assert not backend_for(store.config).fetch([prefix], np.arange(1, 6)).views[0].found.any()


def test_mget_command_is_what_redis_py_packs() -> None:
    from redis.connection import Connection

    from feature_store.online_store import build_keys, mget_command

    ids = np.array([1, 0, -5, 2**62, 42, 42], np.int64)
    prefixes = [b"demo:customer_profile:", b"p:v:"]
    keys = [k for pair in zip(*(build_keys(p, ids) for p in prefixes)) for k in pair]  # entity-major
    assert mget_command(prefixes, ids) == b"".join(Connection().pack_command("MGET", *keys))


def test_records_of_another_size_are_never_decoded_as_this_layout() -> None:
    """Sizes that add up to N records must not pass for N records: a wrong tag forces sizing."""
    from feature_store.online_store import EXPIRED, OK, SCHEMA, Replies, decode, encode_packed

    view = {o.name: o for o in demo_objects(__import__("pathlib").Path("/nonexistent"))}["customer_profile"]
    layout = layout_for(view)
    now = 10**15
    vals = np.arange(4 * 12, dtype=np.float32).reshape(4, 12)
    good = encode_packed(layout, np.array([now, now, now, now - layout.ttl_us - 1]), vals)
    longer = good[1] + b"\0" * 8  # 8 bytes too long, 8 too short: the total is still 4 records
    shorter = good[2][:-8]
    for found in (np.ones(4, bool), np.array([True, True, True, False, True])):
        records = [good[0], longer, shorter, good[3]]
        dec = decode(layout, Replies(found, records), now)
        status = dec.status[found]
        np.testing.assert_array_equal(status, [OK, SCHEMA, SCHEMA, EXPIRED])
        np.testing.assert_array_equal(dec.values[found][0], vals[0])
        assert (dec.ts_us[found] == [now, 0, 0, 0]).all()
        if not found.all():
            assert dec.status[3] == 0 and np.isnan(dec.values[3]).all()
