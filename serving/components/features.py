"""Online feature lookup for the union of the scoring models' feature services."""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import numpy as np

from feature_store.batch import FeatureBatch
from serving import metrics
from serving.components.deadline import call_with_deadline
from serving.components.offload import offload
from serving.repository import scan
from serving.settings import FeatureSettings, Settings

if TYPE_CHECKING:  # the annotation only: store_health imports it when it builds one
    from feature_store.health import StoreHealth


class FeatureLookup:
    """One batched read per request (packed reader by default, Feast's own on demand)."""

    def __init__(self, settings: FeatureSettings, feature_services: list[str]) -> None:
        from feature_store.reader import FeastReader, PackedReader
        from feature_store.repo import load_store

        self.settings = settings
        self.store = load_store(settings)
        refs = feature_refs(self.store, feature_services)
        reader_cls = PackedReader if settings.reader == "packed" else FeastReader
        self.reader = reader_cls.from_store(
            self.store, refs, on_missing_view=settings.on_missing_view, timeout_s=settings.timeout_s
        )
        self.health = store_health(self.store, self.reader.views, settings)
        # Redis reads: a pool of our own and a deadline the caller enforces (connect + read
        # timeouts)
        self.deadline_s = 2 * settings.timeout_s
        self._pool = (
            ThreadPoolExecutor(4, thread_name_prefix="features")
            if settings.backend == "redis"
            else None
        )

    async def lookup(self, entity_ids: np.ndarray) -> FeatureBatch:
        start = time.perf_counter()
        if self._pool is None:  # embedded: in-memory reads inline up to offload_rows
            batch = await offload(
                len(entity_ids), self.settings.offload_rows, self.reader.read, entity_ids
            )
        else:
            batch = await self._network(self.reader.read, entity_ids)
        metrics.feature_read(batch, 1e3 * (time.perf_counter() - start))
        return batch

    async def _network(self, fn: Any, *args: Any, deadline_s: float | None = None) -> Any:
        from feature_store.errors import OnlineStoreUnavailable

        name, budget = self.health.kv.name, deadline_s or self.deadline_s

        def late() -> Exception:
            return OnlineStoreUnavailable(name, f"no answer within {budget:g} s")

        assert self._pool is not None, "network reads run on the Redis backend's pool"
        try:
            return await call_with_deadline(self._pool, budget, late, fn, *args)
        except OnlineStoreUnavailable as exc:
            self.health.failed(str(exc))
            raise

    async def ready(self) -> bool:
        """The online store answers and holds every view (cached; checked at most once a second)."""
        return self.health.ready()

    async def contact(self, entity_id: int, service: str = "email_writer") -> dict[str, Any]:
        """String facts (name, email, plan...) of one customer for the email writer,
        through Feast's own get_online_features (one entity: the packed path is moot)."""

        def read() -> dict[str, Any]:
            online = self.store.get_online_features(
                features=self.store.get_feature_service(service),
                entity_rows=[{"customer_id": int(entity_id)}],
            ).to_dict()
            return {k: v[0] for k, v in online.items() if k != "customer_id"}

        # Feast's own path (registry, protos): a looser deadline than the batch read's
        return await (
            asyncio.to_thread(read) if self._pool is None else self._network(read, deadline_s=2.0)
        )

    async def forget(
        self, customer_id: int, suppressed: list[str], key_source: str
    ) -> dict[str, int]:
        """Erase one customer's online records (every view) and export the suppression
        entries (``suppressed``: keyed pseudonyms) so materialization skips them."""
        from feature_store.repo import export_suppression, forget

        def run() -> dict[str, int]:
            export_suppression(
                self.store, key_source, suppressed
            )  # first: a concurrent write skips them
            return forget(self.store, [customer_id])

        return await (
            asyncio.to_thread(run) if self._pool is None else self._network(run, deadline_s=10.0)
        )


def store_health(store: Any, views: tuple[str, ...], settings: FeatureSettings) -> StoreHealth:
    """Readiness of the online store for ``views``, checked once now, then cached."""
    from feature_store.health import StoreHealth
    from feature_store.online_store import kv_store_for

    health = StoreHealth.for_store(
        store,
        views,
        kv_store_for(store.config, settings.timeout_s),
        deadline_s=max(1.0, 4 * settings.timeout_s),
    )
    health.check()
    return health


def feature_refs(store: Any, services: list[str]) -> list[str]:
    """``view:feature`` refs of the union of feature services, in a stable order."""
    refs: dict[str, None] = {}
    for name in services:
        service = store.get_feature_service(name)
        for projection in service.feature_view_projections:
            for feature in projection.features:
                refs[f"{projection.name_to_use()}:{feature.name}"] = None
    return list(refs)


def model_feature_services(settings: Settings) -> list[str]:
    """Feature services named by the scoring models' config.pbtxt, churn first."""
    specs = scan(settings.models.repo_path)
    names = [settings.models.churn, settings.models.engagement]
    services = [s for s in (specs[n].feature_service for n in names if n in specs) if s]
    return list(dict.fromkeys(services)) or ["churn_model", "engagement_model"]
