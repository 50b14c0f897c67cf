"""Routers on a private sqlite file (embedded) or the session's redis-server, and a ledger
that reads back what a router's store holds (the log, the contact counters)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from serving.bandit.router import BanditRouter
from serving.bandit.state import BatchRecord, Reason, open_store
from serving.settings import BanditSettings

RouterFactory = Callable[..., BanditRouter]


def _factory(base: dict[str, Any]) -> Iterator[RouterFactory]:
    made: list[BanditRouter] = []

    def make(**overrides: Any) -> BanditRouter:
        router = BanditRouter(BanditSettings(**{**base, **overrides}))
        made.append(router)
        return router

    yield make
    for r in made:
        r.close()


@pytest.fixture
def embedded_router(tmp_path: Path) -> Iterator[RouterFactory]:
    """Routers sharing one sqlite file, as replicas on one machine do."""
    yield from _factory(
        {"backend": "embedded", "state_path": tmp_path, "seed": 0, "sync_interval_s": 0}
    )


@pytest.fixture
def redis_router(redis_url: str) -> Iterator[RouterFactory]:
    yield from _factory(
        {"backend": "redis", "redis_url": redis_url, "seed": 0, "sync_interval_s": 0}
    )


@pytest.fixture(params=["embedded", "redis"])
def any_router(request: pytest.FixtureRequest) -> RouterFactory:
    """Each behaviour test runs against both backends."""
    name = "embedded_router" if request.param == "embedded" else "redis_router"
    return request.getfixturevalue(name)


def logged_batches(settings: BanditSettings) -> dict[str, BatchRecord]:
    """The decision log by batch id, through a store of its own (the router may be closed)."""
    store = open_store(settings)
    try:
        return {b.batch_id: b for b in store.read_log()[0]}
    finally:
        store.close()


def logged_contacts(batches: Iterable[BatchRecord], control: int) -> Counter[int]:
    """Contacts per customer as the log records them: policy rows with a non-control arm."""
    out: Counter[int] = Counter()
    for b in batches:
        sent = (b.reason == Reason.POLICY) & (b.arm_index != control)
        out.update(b.customer_ids[sent].tolist())
    return out


def stored_contacts(settings: BanditSettings) -> Counter[int]:
    """Contacts per customer as the cap counters hold them (LMDB ledger / Redis keys)."""
    store = open_store(settings)
    try:
        if settings.backend == "redis":
            prefix = store.prefix + ":cap:"  # type: ignore[attr-defined]
            keys = list(store.r.scan_iter(match=prefix + "*"))  # type: ignore[attr-defined]
            return Counter(
                {int(k.decode()[len(prefix) :]): len(store.r.get(k).split(b",")) for k in keys}
            )  # type: ignore[attr-defined]
        return Counter(store.ledger.counts())  # type: ignore[attr-defined]
    finally:
        store.close()


def contexts(n: int, d: int = 2) -> np.ndarray:
    return np.zeros((n, d), np.float32)
