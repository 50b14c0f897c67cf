"""The Redis backend: a down or paused server fails fast, naming itself, and reads recover on
their own."""

from __future__ import annotations

import time
from datetime import timedelta

import numpy as np
import pytest
import redis

from feature_store.errors import OnlineStoreUnavailable
from feature_store.online_store import materialize_packed
from feature_store.online_store.redis_store import RedisStore, url_from_connection_string
from feature_store.reader import FeastReader, PackedReader

from ..conftest import NOW


def test_redis_down_fails_fast_then_recovers(make_store, redis_server) -> None:
    store = make_store("redis")
    reader = PackedReader.from_store(store, "churn_model", timeout_s=0.2)
    ids = np.arange(1, 50, dtype=np.int64)
    assert reader.read(ids).found.any()

    redis_server.stop()
    try:
        with pytest.raises(
            OnlineStoreUnavailable, match=r"feature store \(redis at .*\) unavailable"
        ):
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
    with pytest.raises(OnlineStoreUnavailable):
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
        except OnlineStoreUnavailable:
            time.sleep(0.1)
    else:
        pytest.fail("did not recover after the pause")


def test_fetch_splits_replies_per_view_and_joins_complete_reads(redis_url) -> None:
    kv = RedisStore(redis_url, timeout_s=1.0)
    kv.write(
        [b"p:a:" + bytes(7) + b"\x01", b"p:b:" + bytes(7) + b"\x01", b"p:a:" + bytes(7) + b"\x02"],
        [b"a1", b"b1", b"a2"],
    )
    complete = kv.fetch([b"p:a:", b"p:b:"], np.array([1], np.int64))
    assert complete.joined == b"a1b1" and [v.records for v in complete.views] == [[b"a1"], [b"b1"]]
    partial = kv.fetch([b"p:a:", b"p:b:"], np.array([1, 2], np.int64))
    assert partial.joined is None
    assert partial.views[0].found.tolist() == [True, True] and partial.views[0].records == [
        b"a1",
        b"a2",
    ]
    assert partial.views[1].found.tolist() == [True, False] and partial.views[1].records == [b"b1"]
    assert (
        kv.delete_prefix(b"p:a:") == 2
        and kv.fetch([b"p:a:"], np.array([1], np.int64)).joined is None
    )


def test_url_from_feast_connection_string() -> None:
    assert url_from_connection_string("h:6390,db=2") == "redis://h:6390/2"
    assert url_from_connection_string("h:1,password=pw,ssl=true") == "rediss://:pw@h:1/0"
