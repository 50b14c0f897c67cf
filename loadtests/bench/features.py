"""Feature-read benchmark: the packed store beside raw Redis MGET and Feast's own paths.

Everything is built in a temp dir (a demo Feast repo with the real repo's shapes:
an Int64 ``customer_id`` entity, 12 + 20 Float32 features in two views with TTLs, a
String view, a push source) and every figure is measured in the same run, so ratios
hold on a noisy shared machine.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

PROJECT = "demo"
PROFILE = tuple(f"p_{i:02d}" for i in range(12))
ACTIVITY = tuple(f"a_{i:02d}" for i in range(20))
CONTACT = ("first_name", "email", "plan_name", "region_name")
STORE_CLASS = "feature_store.online_store.PackedOnlineStore"
ENGINE_CLASS = "feature_store.online_store.PackedComputeEngine"


def demo_objects(data_dir: Path) -> list[Any]:
    """Entity, sources, views and services shaped like feature_store/definitions.py."""
    from feast import Entity, FeatureService, FeatureView, Field, FileSource, PushSource, ValueType
    from feast.types import Float32, String

    customer = Entity(name="customer", join_keys=["customer_id"], value_type=ValueType.INT64)

    def source(name: str) -> FileSource:
        return FileSource(
            name=f"{name}_source",
            path=str(data_dir / f"{name}.parquet"),
            timestamp_field="event_timestamp",
            created_timestamp_column="created",
        )

    push = PushSource(name="customer_activity_push", batch_source=source("customer_activity"))
    profile = FeatureView(
        name="customer_profile",
        entities=[customer],
        ttl=timedelta(days=90),
        schema=[Field(name=f, dtype=Float32) for f in PROFILE],
        source=source("customer_profile"),
    )
    activity = FeatureView(
        name="customer_activity",
        entities=[customer],
        ttl=timedelta(days=30),
        schema=[Field(name=f, dtype=Float32) for f in ACTIVITY],
        source=push,
    )
    contact = FeatureView(
        name="customer_contact",
        entities=[customer],
        ttl=timedelta(0),
        schema=[Field(name=f, dtype=String) for f in CONTACT],
        source=source("customer_contact"),
    )
    services = [
        FeatureService(name="churn_model", features=[profile, activity]),
        FeatureService(name="email_writer", features=[contact]),
    ]
    return [customer, push, profile, activity, contact, *services]


def write_demo_data(
    data_dir: Path,
    customers: int,
    *,
    seed: int = 0,
    expired_share: float = 0.1,
    now: datetime | None = None,
) -> dict[str, pd.DataFrame]:
    """Parquet rows for ids 1..customers; ``expired_share`` of each TTL view is past its TTL."""
    rng = np.random.default_rng(seed)
    now = now or datetime.now(timezone.utc)
    ids = np.arange(1, customers + 1, dtype=np.int64)
    frames: dict[str, pd.DataFrame] = {}
    for name, feats, ttl_days in (
        ("customer_profile", PROFILE, 90),
        ("customer_activity", ACTIVITY, 30),
    ):
        age_days = rng.uniform(0.01, ttl_days * 0.8, customers)
        old = rng.random(customers) < expired_share
        age_days[old] = ttl_days * rng.uniform(1.2, 2.0, int(old.sum()))
        ts = pd.to_datetime(now) - pd.to_timedelta(age_days, unit="D")
        df = pd.DataFrame(
            rng.normal(size=(customers, len(feats))).astype(np.float32), columns=list(feats)
        )
        df.insert(0, "customer_id", ids)
        df["event_timestamp"] = ts.round("us")
        df["created"] = df["event_timestamp"]
        frames[name] = df
    contact = pd.DataFrame(
        {
            "customer_id": ids,
            "first_name": [f"name{i}" for i in ids],
            "email": [f"c{i}@example.com" for i in ids],
            "plan_name": rng.choice(["basic", "plus", "pro"], customers),
            "region_name": rng.choice(["north", "south"], customers),
        }
    )
    contact["event_timestamp"] = pd.Timestamp(now) - pd.Timedelta(days=1)
    contact["created"] = contact["event_timestamp"]
    frames["customer_contact"] = contact
    data_dir.mkdir(parents=True, exist_ok=True)
    for name, df in frames.items():
        df.to_parquet(data_dir / f"{name}.parquet", index=False)
    return frames


def make_repo(
    root: Path,
    data_dir: Path,
    online_store: dict[str, Any],
    project: str = PROJECT,
    batch_engine: str | None = None,
) -> Any:
    """A Feast repo at ``root`` (yaml + registry) with the demo objects applied."""
    import yaml
    from feast import FeatureStore

    root.mkdir(parents=True, exist_ok=True)
    cfg = {
        "project": project,
        "registry": str(root / "registry.db"),
        "provider": "local",
        "online_store": online_store,
        "offline_store": {"type": "file"},
        "entity_key_serialization_version": 3,
    }
    if batch_engine:
        cfg["batch_engine"] = {"type": batch_engine}
    (root / "feature_store.yaml").write_text(yaml.safe_dump(cfg))
    store = FeatureStore(repo_path=str(root))
    store.apply(demo_objects(data_dir))
    return store


def packed_config(backend: str, redis_url: str | None = None, **extra: Any) -> dict[str, Any]:
    cfg: dict[str, Any] = {"type": STORE_CLASS, "backend": backend, "path": "online.lmdb"}
    if redis_url:
        cfg["url"] = redis_url
    return {**cfg, **extra}


# --------------------------------------------------------------------------- timing


def _rate(
    fn: Callable[[], Any], n: int, rounds: int = 3, min_s: float = 0.15, max_calls: int = 2000
) -> float:
    """Median entities/s over ``rounds`` rounds of at least ``min_s`` each (one call for slow
    ones)."""
    fn()
    rates = []
    for _ in range(rounds):
        calls, t0 = 0, time.perf_counter()
        while True:
            fn()
            calls += 1
            elapsed = time.perf_counter() - t0
            if elapsed >= min_s or calls >= max_calls:
                break
        rates.append(n * calls / elapsed)
        if elapsed > 2.0:
            break  # slow path (Feast): one round is enough
    return statistics.median(rates)


def _fmt(name: str, value: float, unit: str = "/s") -> str:
    return f"{value:.0%}" if " / " in name else f"{value:,.0f}{unit}"


def _rates(
    fns: dict[str, Callable[[], Any]], n: int, rounds: int = 9, min_s: float = 0.1
) -> dict[str, float]:
    """Median entities/s per path, the paths taking turns round by round.

    Interleaving puts every path under the same background load, so the ratios between
    them hold on a noisy machine even when the absolute figures drift.
    """
    for fn in fns.values():
        fn()
    per_call: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            calls, t0 = 0, time.perf_counter()
            while (elapsed := time.perf_counter() - t0) < min_s:
                fn()
                calls += 1
            per_call[name].append(elapsed / calls)
    return {name: n / statistics.median(times) for name, times in per_call.items()}


def run_feature_bench(
    redis_url: str | None,
    sizes: Sequence[int] = (1, 100, 1000, 10000),
    customers: int = 100_000,
    console: Any = None,
    feast_redis: bool = True,
    workdir: Path | None = None,
) -> list[dict[str, Any]]:
    """Print and return entities/s per read size for each path, plus materialize times.

    Rows: packed-redis, packed-embedded, raw MGET (redis-py ``execute_command`` on the
    same prebuilt keys, no decode), the MGET wire floor (the same request pre-packed
    once, so only Redis, the socket and hiredis's reply parsing remain), Feast
    ``get_online_features`` on our store and on Feast's own Redis store (when
    ``feast_redis``). Needs ``redis_url`` for the Redis rows (others run without it).
    """
    from rich.console import Console
    from rich.table import Table

    from feature_store.online_store import materialize_packed
    from feature_store.online_store.layout import build_keys, view_prefix
    from feature_store.online_store.resp import mget_command, send_packed
    from feature_store.reader import PackedReader

    console = console or Console(width=160)
    tmp = Path(workdir or tempfile.mkdtemp(prefix="feature_bench_"))
    data = tmp / "data"
    now = datetime.now(timezone.utc)
    write_demo_data(data, customers, now=now)
    start, end = now - timedelta(days=400), now + timedelta(minutes=1)
    results: list[dict[str, Any]] = []

    def materialize(label: str, fn: Callable[[], Any]) -> None:
        t0 = time.perf_counter()
        fn()
        secs = time.perf_counter() - t0
        results.append({"kind": "materialize", "path": label, "rows": customers, "seconds": secs})
        console.print(
            f"[bold]{label}[/]: materialized {customers:,} customers x {len(views)} views "
            f"in {secs:.2f} s"
        )

    views = ["customer_profile", "customer_activity"]
    stores: dict[str, Any] = {}
    stores["embedded"] = make_repo(tmp / "embedded", data, packed_config("embedded"))
    materialize(
        "packed-embedded (materialize_packed)",
        lambda: materialize_packed(stores["embedded"], start, end, views),
    )
    if redis_url:
        import redis

        stores["redis"] = make_repo(
            tmp / "redis", data, packed_config("redis", redis_url, timeout_s=5.0)
        )
        materialize(
            "packed-redis (materialize_packed)",
            lambda: materialize_packed(stores["redis"], start, end, views),
        )
        stores["redis_feast_path"] = make_repo(
            tmp / "redis2",
            data,
            packed_config("redis", redis_url, key_prefix="demo2"),
            project="demo2",
        )
        materialize(
            "packed-redis (feast materialize, Feast's local engine)",
            lambda: stores["redis_feast_path"].materialize(start, end, feature_views=views),
        )
        stores["redis_engine"] = make_repo(
            tmp / "redis3",
            data,
            packed_config("redis", redis_url, key_prefix="demo3"),
            project="demo3",
            batch_engine=ENGINE_CLASS,
        )
        materialize(
            "packed-redis (feast materialize, PackedComputeEngine)",
            lambda: stores["redis_engine"].materialize(start, end, feature_views=views),
        )
        if feast_redis:
            host = redis_url.split("//")[1].split("/")[0]
            stores["feast_redis"] = make_repo(
                tmp / "feast_redis",
                data,
                {"type": "redis", "connection_string": host},
                project="demofeast",
            )
            materialize(
                "feast-redis (Feast materialize)",
                lambda: stores["feast_redis"].materialize(start, end, feature_views=views),
            )
        raw = redis.Redis.from_url(redis_url)

    rng = np.random.default_rng(1)
    readers = {
        name: PackedReader.from_store(stores[name], "churn_model")
        for name in ("redis", "embedded")
        if name in stores
    }
    for size in sizes:
        ids = rng.integers(1, customers + 1, size).astype(np.int64)
        row: dict[str, Any] = {"kind": "read", "size": size}
        fast: dict[str, Callable[[], Any]] = {
            f"packed {name}": (lambda r=reader: r.read(ids)) for name, reader in readers.items()
        }
        if redis_url:
            prefixes = [view_prefix(PROJECT.encode(), v) for v in views]
            keys = [k for p in prefixes for k in build_keys(p, ids)]
            command = mget_command(prefixes, ids)
            fast["raw MGET"] = lambda: raw.execute_command("MGET", *keys)
            fast["MGET wire floor"] = lambda: send_packed(
                raw, command
            )  # pre-packed once: the floor
        row.update(_rates(fast, size))
        fs = {name: s.get_feature_service("churn_model") for name, s in stores.items()}
        for name in ("redis", "feast_redis", "embedded"):
            if name in stores and size <= 10_000:
                row[f"Feast gof {name}"] = _rate(
                    lambda s=stores[name], f=fs[name]: s.get_online_features(
                        features=f, entity_rows={"customer_id": ids.tolist()}
                    ),
                    size,
                    min_s=0.3,
                    max_calls=200,
                )
        if "packed redis" in row and "raw MGET" in row:
            row["redis / MGET"] = row["packed redis"] / row["raw MGET"]
            row["redis / floor"] = row["packed redis"] / row["MGET wire floor"]
        results.append(row)
        console.print(
            f"size {size}: "
            + ", ".join(_fmt(k, v) for k, v in row.items() if k not in ("kind", "size"))
        )

    table = Table(title=f"entities/s ({customers:,} customers, churn_model = 2 views, 32 float32)")
    cols = [c for c in results[-1] if c not in ("kind", "size")]
    table.add_column("per read", justify="right")
    for c in cols:
        table.add_column(c, justify="right")
    for row in (r for r in results if r["kind"] == "read"):
        table.add_row(
            f"{row['size']:,}", *(_fmt(c, row.get(c, float("nan")), unit="") for c in cols)
        )
    console.print(table)
    mt = Table(title="materialize (2 float views)")
    mt.add_column("path")
    mt.add_column("seconds", justify="right")
    for r in (r for r in results if r["kind"] == "materialize"):
        mt.add_row(r["path"], f"{r['seconds']:.2f}")
    console.print(mt)
    return results


if __name__ == "__main__":  # python -m loadtests.bench.features [redis_url] [customers]
    import sys

    run_feature_bench(
        sys.argv[1] if len(sys.argv) > 1 else None,
        customers=int(sys.argv[2]) if len(sys.argv) > 2 else 100_000,
    )
