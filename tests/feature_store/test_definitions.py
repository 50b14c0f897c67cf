"""The Feast repository: `feast apply` on a copy, point-in-time joins, materialization."""

from __future__ import annotations

import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from feast import FeatureStore
from feast.repo_operations import get_repo_files
from feast.types import Float32, String

from feature_store.datagen.files import ensure, read_labels
from feature_store.datagen.generate import build_day
from feature_store.datagen.labels import churn_probability
from feature_store.datagen.schema import (
    ACTIVITY_FEATURES,
    CHURN_FEATURES,
    CONTACT_FEATURES,
    ENGAGEMENT_FEATURES,
    PROFILE_FEATURES,
)
from feature_store import repo as fr
from serving.settings import FeatureSettings

SRC = Path(fr.__file__).parent
N, SNAPSHOTS = 300, 3
ANCHOR = build_day()
REPO_FILES = ("definitions.py", "feature_store.yaml", "feature_store.redis.yaml", ".feastignore")


def copy_repo(dst: Path) -> Path:
    dst.mkdir(parents=True)
    for name in REPO_FILES:
        shutil.copy(SRC / name, dst / name)
    ensure(dst / "data", N, seed=5, snapshots=SNAPSHOTS, anchor=ANCHOR)
    return dst


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> FeatureStore:
    repo = copy_repo(tmp_path_factory.mktemp("fs") / "repo")
    s = fr.load_store(FeatureSettings(repo_path=repo))
    out = fr.apply(s)
    assert "customer_activity" in out  # Feast names each view it deployed
    return s


def test_feastignore_leaves_only_definitions() -> None:
    assert [p.name for p in get_repo_files(SRC)] == ["definitions.py"]


def test_registry_matches_the_contract(store: FeatureStore) -> None:
    from feature_store import definitions as d

    entity = store.get_entity("customer")
    assert entity.join_key == "customer_id"
    views = {v.name: v for v in store.list_feature_views()}
    assert {n: [f.name for f in v.features] for n, v in views.items()} == {
        "customer_profile": list(PROFILE_FEATURES),
        "customer_activity": list(ACTIVITY_FEATURES),
        "customer_contact": list(CONTACT_FEATURES),
    }
    assert (d.PROFILE_FEATURES, d.ACTIVITY_FEATURES, d.CONTACT_FEATURES) == (
        PROFILE_FEATURES,
        ACTIVITY_FEATURES,
        CONTACT_FEATURES,
    )
    assert all(
        f.dtype == Float32
        for n in ("customer_profile", "customer_activity")
        for f in views[n].features
    )
    assert all(f.dtype == String for f in views["customer_contact"].features)
    assert views["customer_profile"].ttl == timedelta(days=90)
    assert views["customer_activity"].ttl == timedelta(days=30)
    assert not views["customer_contact"].ttl
    assert views["customer_activity"].stream_source.name == "customer_activity_push"
    services = {
        s.name: [f.name for p in s.feature_view_projections for f in p.features]
        for s in store.list_feature_services()
    }
    assert services["churn_model"] == list(CHURN_FEATURES)
    assert services["engagement_model"] == list(ENGAGEMENT_FEATURES)
    assert services["email_writer"] == list(CONTACT_FEATURES)


def test_apply_twice_changes_nothing(store: FeatureStore) -> None:
    out = fr.apply(store)
    assert "Created" not in out and "Deleted" not in out


def _snapshot(store: FeatureStore, table: str, s: int) -> pd.DataFrame:
    """Snapshot ``s`` of a generated table (rows are written snapshot by snapshot)."""
    df = pd.read_parquet(Path(store.repo_path) / "data" / f"{table}.parquet")
    return df.iloc[s * N : (s + 1) * N].set_index("customer_id")


def test_point_in_time_join_picks_the_label_snapshot(store: FeatureStore) -> None:
    labels = read_labels(Path(store.repo_path) / "data")
    df = (
        store.get_historical_features(
            entity_df=labels[["customer_id", "event_timestamp"]],
            features=store.get_feature_service("churn_model"),
        )
        .to_df()
        .set_index("customer_id")
        .sort_index()
    )
    label_snap, latest = (
        _snapshot(store, "customer_activity", SNAPSHOTS - 2),
        _snapshot(store, "customer_activity", SNAPSHOTS - 1),
    )
    np.testing.assert_array_equal(
        df["orders_365d"].to_numpy(), label_snap.loc[df.index, "orders_365d"].to_numpy()
    )
    assert (df["orders_365d"].to_numpy() != latest.loc[df.index, "orders_365d"].to_numpy()).any()
    feats = {c: df[c].to_numpy() for c in CHURN_FEATURES}
    p = labels.set_index("customer_id").loc[df.index, "p_churn"].to_numpy()
    np.testing.assert_allclose(churn_probability(feats), p)  # the labels' own features came back


def test_point_in_time_join_now_picks_latest_and_ttl_expires(store: FeatureStore) -> None:
    ids = np.arange(1, 21)
    now = datetime.now(timezone.utc)
    entity = pd.DataFrame({"customer_id": ids, "event_timestamp": [now] * 20})
    far = pd.DataFrame({"customer_id": ids, "event_timestamp": [now + timedelta(days=60)] * 20})
    feats = ["customer_activity:orders_90d", "customer_profile:tenure_days"]
    got = (
        store.get_historical_features(entity_df=entity, features=feats)
        .to_df()
        .set_index("customer_id")
    )
    latest = _snapshot(store, "customer_activity", SNAPSHOTS - 1)
    np.testing.assert_array_equal(got.loc[ids, "orders_90d"], latest.loc[ids, "orders_90d"])
    late = (
        store.get_historical_features(entity_df=far, features=feats)
        .to_df()
        .set_index("customer_id")
    )
    assert late["orders_90d"].isna().all()  # 30 d TTL passed
    assert late["tenure_days"].notna().all()  # 90 d TTL not yet


def test_materialize_puts_latest_snapshot_online(store: FeatureStore) -> None:
    timings = fr.materialize(store)
    assert set(timings) == set(fr.VIEWS)
    _assert_online_latest(store)


def _assert_online_latest(store: FeatureStore) -> None:
    rows = [{"customer_id": i} for i in (1, 2, N)]
    got = store.get_online_features(
        features=store.get_feature_service("churn_model"), entity_rows=rows
    ).to_dict()
    latest = _snapshot(store, "customer_profile", SNAPSHOTS - 1)
    np.testing.assert_allclose(got["tenure_days"], latest.loc[[1, 2, N], "tenure_days"])
    contact = store.get_online_features(
        features=store.get_feature_service("email_writer"), entity_rows=rows
    ).to_dict()
    assert all(isinstance(e, str) and "@" in e for e in contact["email"])


def test_redis_yaml_materializes_into_redis(tmp_path: Path, redis_url: str) -> None:
    repo = copy_repo(tmp_path / "repo")
    settings = FeatureSettings(repo_path=repo, backend="redis", redis_url=redis_url)
    store = fr.load_store(settings)
    assert store.config.online_store.type.endswith("PackedOnlineStore")
    assert store.config.online_store.backend == "redis"
    assert store.config.online_store.connection_string == fr.feast_redis_connection(redis_url)
    fr.apply(store)
    fr.materialize(store, views=("customer_profile", "customer_contact"))
    _assert_online_latest_profile(store)


def _assert_online_latest_profile(store: FeatureStore) -> None:
    got = store.get_online_features(
        features=["customer_profile:tenure_days", "customer_contact:email"],
        entity_rows=[{"customer_id": 1}, {"customer_id": N + 5}],
    ).to_dict()
    assert (
        got["tenure_days"][0]
        == _snapshot(store, "customer_profile", SNAPSHOTS - 1).loc[1, "tenure_days"]
    )
    assert got["tenure_days"][1] is None and "@" in got["email"][0]


def test_feast_redis_connection_string() -> None:
    assert fr.feast_redis_connection("redis://127.0.0.1:6390/2") == "127.0.0.1:6390,db=2"
    assert fr.feast_redis_connection("rediss://:pw@h:1/0") == "h:1,db=0,password=pw,ssl=true"


def test_unreachable_redis_is_an_online_store_error(tmp_path: Path) -> None:
    import socket

    from feature_store.errors import OnlineStoreUnavailable

    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    repo = copy_repo(tmp_path / "repo")
    store = fr.load_store(
        FeatureSettings(repo_path=repo, backend="redis", redis_url=f"redis://127.0.0.1:{port}/0")
    )
    with pytest.raises(OnlineStoreUnavailable, match="unavailable"):
        fr.apply(store)
        fr.materialize(store, views=("customer_profile",))
