"""PackedReader against Feast's get_online_features on the same store (the parity contract)."""

from __future__ import annotations

import numpy as np
import pytest

from feature_store.batch import FeatureBatch
from loadtests.bench.features import ACTIVITY, PROFILE
from feature_store.reader import FeastReader, PackedReader

from .conftest import CUSTOMERS


def _assert_same(a: FeatureBatch, b: FeatureBatch) -> None:
    assert a.names == b.names and a.views == b.views
    np.testing.assert_array_equal(a.found, b.found)
    np.testing.assert_array_equal(a.view_found, b.view_found)
    np.testing.assert_array_equal(a.values, b.values)  # NaN == NaN here
    np.testing.assert_array_equal(a.event_ts, b.event_ts)


@pytest.mark.parametrize("on_missing_view", ["not_found", "defaults"])
def test_parity_with_feast_on_10000_random_entities(store, on_missing_view) -> None:
    rng = np.random.default_rng(3)
    ids = rng.integers(1, int(CUSTOMERS * 1.3), 10_000).astype(np.int64)  # ~23% unknown, repeats
    packed = PackedReader.from_store(store, "churn_model", on_missing_view=on_missing_view).read(
        ids
    )
    feast = FeastReader.from_store(store, "churn_model", on_missing_view=on_missing_view).read(ids)
    _assert_same(packed, feast)
    unknown = ids > CUSTOMERS
    assert not packed.view_found[unknown].any()
    assert packed.expired[~unknown].any(axis=0).all()  # some rows of each view expired...
    assert not packed.view_found[packed.expired].any()  # ...and those are not found
    assert packed.found[~unknown].sum() > 0.6 * (~unknown).sum()
    assert packed.values.shape == (10_000, 32) and packed.values.dtype == np.float32


@pytest.mark.parametrize("on_missing_view", ["not_found", "defaults"])
@pytest.mark.parametrize(
    "features",
    ["churn_model", ["customer_activity:a_05", "customer_profile:p_11", "customer_activity:a_00"]],
)
def test_one_pass_decode_equals_the_per_view_decode(store, on_missing_view, features) -> None:
    """Every key found (the one-pass path), some rows expired: same batch as view by view, and
    as Feast."""
    from feature_store.online_store.layout import now_us

    ids = np.random.default_rng(4).integers(1, CUSTOMERS + 1, 3_000).astype(np.int64)
    reader = PackedReader.from_store(store, features, on_missing_view=on_missing_view)
    fetched = reader._kv.fetch(reader._prefixes, ids)
    assert fetched.joined is not None
    now = now_us()
    block = reader._read_block(fetched.joined, len(ids), now)
    assert block is not None and block.expired.any() and block.view_found.any()
    _assert_same(block, reader._read_views(fetched.views, len(ids), now))
    np.testing.assert_array_equal(
        block.expired, reader._read_views(fetched.views, len(ids), now).expired
    )
    _assert_same(
        reader.read(ids),
        FeastReader.from_store(store, features, on_missing_view=on_missing_view).read(ids),
    )


def test_feature_refs_duplicates_and_order(store) -> None:
    refs = ["customer_activity:a_03", "customer_profile:p_00", "customer_activity:a_01"]
    ids = np.array([10, CUSTOMERS + 1, 10, 3], np.int64)
    packed = PackedReader.from_store(store, refs).read(ids)
    assert packed.names == ("a_03", "a_01", "p_00") and packed.views == (
        "customer_activity",
        "customer_profile",
    )
    _assert_same(packed, FeastReader.from_store(store, refs).read(ids))
    np.testing.assert_array_equal(packed.values[0], packed.values[2])
    assert np.isnan(packed.values[1]).all() and not packed.found[1]


def test_values_are_the_offline_rows(store, demo_data) -> None:
    frames = demo_data[1]
    ids = np.arange(1, 101, dtype=np.int64)
    batch = PackedReader.from_store(store, "churn_model").read(ids)
    for view, feats in (("customer_profile", PROFILE), ("customer_activity", ACTIVITY)):
        truth = frames[view].set_index("customer_id").loc[ids]
        ok = batch.view_found[:, batch.views.index(view)]
        np.testing.assert_array_equal(
            batch.columns(list(feats))[ok], truth[list(feats)].to_numpy(np.float32)[ok]
        )
        ts = truth["event_timestamp"].astype("int64").to_numpy() / 1e9  # ns since epoch
        np.testing.assert_allclose(
            batch.event_ts[ok, batch.views.index(view)], ts[ok], rtol=0, atol=1e-6
        )


def test_empty_read_and_string_view_rejected(store) -> None:
    empty = PackedReader.from_store(store, "churn_model").read(np.zeros(0, np.int64))
    assert empty.values.shape == (0, 32) and empty.found.shape == (0,)
    with pytest.raises(ValueError, match="FeastReader"):
        PackedReader.from_store(store, "email_writer")
