"""Online feature lookup for the union of the scoring models' feature services."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import numpy as np

from feature_store.batch import FeatureBatch
from serving import metrics
from serving.components.offload import offload
from serving.repository import scan
from serving.settings import FeatureSettings, Settings


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

    async def lookup(self, entity_ids: np.ndarray) -> FeatureBatch:
        start = time.perf_counter()
        limit = 0 if self.settings.backend == "redis" else self.settings.offload_rows  # network I/O: a thread
        batch = await offload(len(entity_ids), limit, self.reader.read, entity_ids)
        metrics.feature_read(batch, 1e3 * (time.perf_counter() - start))
        return batch

    async def contact(self, entity_id: int, service: str = "email_writer") -> dict[str, Any]:
        """String facts (name, email, plan...) of one customer for the email writer,
        through Feast's own get_online_features (one entity: the packed path is moot)."""

        def read() -> dict[str, Any]:
            online = self.store.get_online_features(
                features=self.store.get_feature_service(service), entity_rows=[{"customer_id": int(entity_id)}]
            ).to_dict()
            return {k: v[0] for k, v in online.items() if k != "customer_id"}

        return await asyncio.to_thread(read)


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
    services = [specs[n].feature_service for n in names if n in specs and specs[n].feature_service]
    return list(dict.fromkeys(services)) or ["churn_model", "engagement_model"]
