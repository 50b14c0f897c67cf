"""Readiness of the online store: reachable, answering, and holding every view.

A real redis-server: emptied (restart, FLUSHDB), unmaterialized, refused, and hung
(``SIGSTOP``); the embedded LMDB store for the same questions.
"""

from __future__ import annotations

import os
import signal
import time
from datetime import timedelta

import numpy as np
import pytest
import redis

from feature_store.errors import OnlineStoreUnavailable
from feature_store.health import StoreHealth
from feature_store.online_store import kv_store_for, materialize_packed
from feature_store.reader import PackedReader

from .conftest import NOW

VIEWS = ("customer_profile", "customer_activity")


def health_of(store, timeout_s: float = 0.2, **kwargs) -> StoreHealth:
    return StoreHealth.for_store(store, VIEWS, kv_store_for(store.config, timeout_s), **kwargs)


@pytest.mark.parametrize("backend", ["embedded", "redis"])
def test_materialized_store_is_ready(make_store, backend) -> None:
    assert health_of(make_store(backend)).check().ready


@pytest.mark.parametrize("backend", ["embedded", "redis"])
def test_unmaterialized_store_is_not_ready(make_store, backend) -> None:
    state = health_of(make_store(backend, materialize=False)).check()
    assert (
        not state.ready and "holds no rows of customer_profile, customer_activity" in state.reason
    )


def test_redis_emptied_is_not_ready(make_store, redis_url) -> None:
    store = make_store("redis")
    health = health_of(store)
    assert health.check().ready
    redis.Redis.from_url(redis_url).flushdb()
    state = health.check()
    assert not state.ready and "not materialized" in state.reason
    materialize_packed(store, NOW - timedelta(days=400), NOW + timedelta(minutes=1))
    assert health.check().ready


def test_store_without_markers_is_found_by_a_bounded_scan(make_store, redis_url) -> None:
    """Stores written before the view markers existed stay ready."""
    store = make_store("redis")
    admin = redis.Redis.from_url(redis_url)
    markers = [k for k in admin.scan_iter(match=b"*") if not k[-8:].isdigit() and k.endswith(b":")]
    assert markers and admin.delete(*markers) == len(markers)
    assert health_of(store).check().ready


def test_redis_refused_is_not_ready(make_store, redis_server) -> None:
    health = health_of(make_store("redis"))
    redis_server.stop()
    try:
        state = health.check()
    finally:
        redis_server.start()
    assert not state.ready and "unavailable" in state.reason and "redis at" in state.reason


def test_hung_redis_is_not_ready_within_the_deadline_and_reads_fail_fast(
    make_store, redis_server
) -> None:
    store = make_store("redis")
    health = health_of(store, timeout_s=0.2, interval_s=0.0, deadline_s=0.5)
    reader = PackedReader.from_store(store, "churn_model", timeout_s=0.2)
    ids = np.arange(1, 20, dtype=np.int64)
    assert health.check().ready and reader.read(ids).found.any()
    os.kill(redis_server.proc.pid, signal.SIGSTOP)
    try:
        health.status()  # starts a background check that cannot answer
        time.sleep(0.6)
        # The caller never waits on the store: each status() answers well inside the
        # store's 0.2 s timeout, and one of them says "not ready" once the deadline passes
        # (polled, so a busy machine that runs the check late does not fail the test).
        limit = time.monotonic() + 3
        while True:
            started = time.monotonic()
            state = health.status()
            assert time.monotonic() - started < 0.15
            if not state.ready:
                break
            assert time.monotonic() < limit, "still ready with the store frozen"
            time.sleep(0.05)
        start = time.monotonic()
        with pytest.raises(OnlineStoreUnavailable, match="redis at"):
            reader.read(ids)  # a timeout: the breaker opens
        first = time.monotonic() - start
        start = time.monotonic()
        with pytest.raises(OnlineStoreUnavailable, match="no answer within"):
            reader.read(ids)
        assert first < 1.0 and time.monotonic() - start < 0.15  # then at once, not another timeout
    finally:
        os.kill(redis_server.proc.pid, signal.SIGCONT)
    deadline = time.monotonic() + 5
    while not health.check().ready:
        assert time.monotonic() < deadline, "not ready again after SIGCONT"
        time.sleep(0.1)
    while True:  # reads recover by themselves once the breaker's retry comes
        try:
            assert reader.read(ids).found.any()
            break
        except OnlineStoreUnavailable:
            assert time.monotonic() < deadline
            time.sleep(0.1)
