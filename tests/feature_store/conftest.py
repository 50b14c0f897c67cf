"""A small Feast repo with the real repo's shapes, on each online-store backend.

Built from :mod:`loadtests.bench.features` (demo definitions: Int64 ``customer_id``, two
Float32 views with 90 d / 30 d TTLs, a String view, a push source), so these tests do
not wait on feature_store/definitions.py. Data: ids 1..CUSTOMERS, a tenth of each TTL
view past its TTL.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from loadtests.bench.features import make_repo, packed_config, write_demo_data
from feature_store.online_store import materialize_packed

CUSTOMERS = 3000
NOW = datetime.now(timezone.utc)


@pytest.fixture(scope="session")
def demo_data(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, pd.DataFrame]]:
    path = tmp_path_factory.mktemp("demo_data")
    return path, write_demo_data(path, CUSTOMERS, now=NOW)


StoreFactory = Callable[..., Any]


@pytest.fixture
def make_store(
    tmp_path: Path, demo_data: tuple[Path, dict[str, pd.DataFrame]], request: pytest.FixtureRequest
) -> Iterator[StoreFactory]:
    """``make_store(backend, materialize=True, **config)``: an applied (and loaded) repo."""

    def factory(backend: str = "embedded", materialize: bool = True, **extra: Any) -> Any:
        url = request.getfixturevalue("redis_url") if backend == "redis" else None
        store = make_repo(
            tmp_path / f"repo_{backend}", demo_data[0], packed_config(backend, url, **extra)
        )
        if materialize:
            materialize_packed(store, NOW - timedelta(days=400), NOW + timedelta(minutes=1))
        return store

    yield factory


@pytest.fixture(params=["embedded", "redis"])
def store(request: pytest.FixtureRequest, make_store: StoreFactory) -> Any:
    """A materialized demo store on each backend."""
    return make_store(request.param)
