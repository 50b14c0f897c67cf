"""A built workspace (real data, Feast online store, trained models with their references)
and the DataPlane the routes call, in-process, with a monitor over its own shared state."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from serving.settings import Settings, load_settings
from tests.e2e.conftest import make_workspace

CUSTOMERS = 8_000


@pytest.fixture(scope="session")
def built_workspace(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from serving.build import run_build

    overrides = make_workspace(
        tmp_path_factory.mktemp("monitor"), customers=CUSTOMERS, llm={"enabled": False}
    )
    run_build(
        load_settings(overrides),
        steps=("generate", "apply", "materialize", "train_churn", "train_engagement"),
    )
    return overrides


@pytest.fixture(scope="session")
def ws_settings(built_workspace: dict[str, Any]) -> Settings:
    return load_settings(built_workspace)


@pytest.fixture(scope="session")
def profile(ws_settings: Settings) -> pd.DataFrame:
    """The newest profile row per customer, read from the generated data (not from the server)."""
    df = pd.read_parquet(ws_settings.features.repo_path / "data" / "customer_profile.parquet")
    return df.sort_values("event_timestamp").groupby("customer_id").last()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Any]:
    from serving.shared_state import SqliteSharedState

    s = SqliteSharedState(tmp_path / "shared.sqlite")
    yield s
    s.close()


@pytest.fixture
def make_dataplane(ws_settings: Settings, store: Any, tmp_path: Path) -> Callable[[], Any]:
    """A DataPlane with features, both models, the bandit (its own state dir) and a monitor
    over ``store``; call it inside the test's event loop (the components bind to it)."""
    from serving.components.bandit import BanditService
    from serving.components.features import FeatureLookup, model_feature_services
    from serving.components.models import ModelService
    from serving.dataplane import DataPlane
    from serving.monitoring import Monitor, References

    def make(base: Settings | None = None) -> Any:
        base = base or ws_settings
        s = base.model_copy(
            update={"bandit": base.bandit.model_copy(update={"state_path": tmp_path / "bandit"})}
        )
        features = FeatureLookup(s.features, model_feature_services(s))
        models = {n: ModelService(n, s.models) for n in (s.models.churn, s.models.engagement)}
        monitor = Monitor(
            store, References(s.models.repo_path), flush_interval_s=3600
        )  # the tests flush
        return DataPlane(s, features, models, BanditService(s.bandit), monitor=monitor)

    return make


async def score_all(dp: Any, ids: np.ndarray, batch: int = 1000) -> dict[str, np.ndarray]:
    """Score ``ids`` in batches; the answers' columns, concatenated."""
    parts = [await dp.inference.score(ids[i : i + batch]) for i in range(0, len(ids), batch)]
    return {
        "ids": np.concatenate([p.customer_ids for p in parts]),
        "churn": np.concatenate([p.churn_probability for p in parts]),
        "action": np.concatenate([p.decisions.action for p in parts]),
        "reason": np.concatenate([p.decisions.reason for p in parts]),
    }
