"""Materialization without protos: ``materialize_packed`` and ``batch_engine:
PackedComputeEngine``."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest

from loadtests.bench.features import ENGINE_CLASS, make_repo, packed_config
from feature_store.online_store import PackedOnlineStore, materialize_packed
from feature_store.reader import PackedReader

from ..conftest import CUSTOMERS, NOW


@pytest.mark.parametrize("backend", ["embedded", "redis"])
def test_feast_materialize_through_the_packed_engine_skips_protos(
    tmp_path, demo_data, request, monkeypatch, backend
) -> None:
    """``batch_engine: PackedComputeEngine``: feast materialize writes from Arrow, same rows as
    Feast's engine."""
    url = request.getfixturevalue("redis_url") if backend == "redis" else None
    feast_engine = make_repo(
        tmp_path / "feast", demo_data[0], packed_config(backend, url, key_prefix="a", path="a.lmdb")
    )
    feast_engine.materialize(NOW - timedelta(days=400), NOW + timedelta(minutes=1))
    ours = make_repo(
        tmp_path / "ours",
        demo_data[0],
        packed_config(backend, url, key_prefix="b", path="b.lmdb"),
        batch_engine=ENGINE_CLASS,
    )
    monkeypatch.setattr(
        PackedOnlineStore, "online_write_batch", lambda *a, **k: pytest.fail("protos built")
    )
    ours.materialize(NOW - timedelta(days=400), NOW + timedelta(minutes=1))
    ids = np.arange(1, CUSTOMERS + 50, dtype=np.int64)
    a = PackedReader.from_store(feast_engine, "churn_model").read(ids)
    b = PackedReader.from_store(ours, "churn_model").read(ids)
    assert b.view_found.sum() > 0.8 * b.view_found.size
    np.testing.assert_array_equal(a.values, b.values)
    np.testing.assert_array_equal(a.event_ts, b.event_ts)
    view = ours.get_feature_view("customer_profile")
    assert view.materialization_intervals  # recorded in the registry as Feast's engine does
    got = ours.get_online_features(
        features=["customer_contact:email"], entity_rows={"customer_id": [5]}
    ).to_dict()
    assert got["email"] == ["c5@example.com"]  # the String view went through the same engine


def test_materialize_packed_counts_rows_and_records_the_interval(make_store) -> None:
    store = make_store("embedded", materialize=False)
    written = materialize_packed(
        store,
        NOW - timedelta(days=400),
        NOW + timedelta(minutes=1),
        feature_views=["customer_profile"],
    )
    assert written == {"customer_profile": CUSTOMERS}
    assert store.get_feature_view("customer_profile").materialization_intervals
    assert not store.get_feature_view("customer_activity").materialization_intervals
