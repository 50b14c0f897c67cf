"""Routers on a private sqlite file (embedded) or the session's redis-server."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from serving.bandit.router import BanditRouter
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
    yield from _factory({"backend": "embedded", "state_path": tmp_path, "seed": 0, "sync_interval_s": 0})


@pytest.fixture
def redis_router(redis_url: str) -> Iterator[RouterFactory]:
    yield from _factory({"backend": "redis", "redis_url": redis_url, "seed": 0, "sync_interval_s": 0})


@pytest.fixture(params=["embedded", "redis"])
def any_router(request: pytest.FixtureRequest) -> RouterFactory:
    """Each behaviour test runs against both backends."""
    name = "embedded_router" if request.param == "embedded" else "redis_router"
    return request.getfixturevalue(name)
