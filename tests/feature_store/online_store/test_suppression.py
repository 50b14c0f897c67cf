"""Erasure in the online store: ``forget`` deletes every view's record, and the
suppression export keeps both materialization paths (ours and Feast's CLI engine) from
writing a suppressed customer back."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest

from loadtests.bench.features import make_repo, packed_config
from feature_store.online_store import materialize_packed
from feature_store.pseudonym import pseudonym_hex
from feature_store.reader import PackedReader
from feature_store.repo import export_suppression, forget

from ..conftest import NOW

KEY = bytes(range(16))


def _found(store, ids: np.ndarray) -> np.ndarray:  # type: ignore[no-untyped-def]
    batch = PackedReader.from_store(store, "churn_model").read(ids)
    email = store.get_online_features(
        features=["customer_contact:email"], entity_rows={"customer_id": ids.tolist()}
    ).to_dict()["email"]
    return np.array([bool(f) or e is not None for f, e in zip(batch.view_found.any(axis=1), email)])


@pytest.mark.parametrize("backend", ["embedded", "redis"])
def test_forget_then_no_materialization_brings_a_suppressed_customer_back(
    tmp_path, demo_data, request, backend
) -> None:
    url = request.getfixturevalue("redis_url") if backend == "redis" else None
    store = make_repo(
        tmp_path / "repo", demo_data[0], packed_config(backend, url, key_prefix=f"s{backend}")
    )
    materialize_packed(store, NOW - timedelta(days=400), NOW + timedelta(minutes=1))
    ids = np.array([5, 6, 7], np.int64)
    assert _found(store, ids).all()
    (tmp_path / "key").write_text(KEY.hex())
    export_suppression(store, str(tmp_path / "key"), [pseudonym_hex(6, KEY)])
    removed = forget(store, [6])
    assert sum(removed.values()) >= 2 and removed["customer_contact"] == 1
    assert _found(store, ids).tolist() == [True, False, True]
    assert sum(forget(store, [6]).values()) == 0  # nothing left to remove
    materialize_packed(store, NOW - timedelta(days=400), NOW + timedelta(minutes=1))  # ours
    assert _found(store, ids).tolist() == [True, False, True]
    store.materialize(
        NOW - timedelta(days=400), NOW + timedelta(minutes=1)
    )  # Feast's engine, protos
    assert _found(store, ids).tolist() == [True, False, True]
    export_suppression(
        store, str(tmp_path / "key"), []
    )  # the entry lifted: the next load brings them back
    materialize_packed(store, NOW - timedelta(days=400), NOW + timedelta(minutes=1))
    assert _found(store, ids).all()
