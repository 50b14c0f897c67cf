"""Durable rollout state: a new control instance over the same store (a replaced control
actor, a restarted app) resumes the same canary with the same assignment."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from serving.components.desired import LocalDesiredState, ModelStates
from serving.components.models import ModelService
from serving.components.rollout_control import TrafficChange
from serving.errors import DependencyUnavailable
from serving.settings import load_settings
from serving.shared_state import RedisSharedState, SqliteSharedState, redis_location

NAMES = ("a", "b", "c")
IDS = np.arange(20_000, dtype=np.int64)


@pytest.fixture(params=["sqlite", "redis"])
def spec(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict]:
    if request.param == "sqlite":
        yield {"backend": "sqlite", "path": str(tmp_path / "state" / "shared.sqlite")}
    else:
        url = request.getfixturevalue("redis_url")
        yield {"backend": "redis", "url": url, "timeout_s": 0.5}


def _service(model_repo: Path, states: ModelStates, replica: str, **models: object) -> ModelService:
    settings = load_settings(
        {"models": {"repo_path": str(model_repo), "batch_wait_timeout_s": 0.002, **models}}
    )
    return ModelService(
        "churn", settings.models, desired=LocalDesiredState(states), replica=replica
    )


def _assigned(service: ModelService) -> np.ndarray:
    codes, versions = service.policy.assign(IDS)  # type: ignore[union-attr]
    return np.asarray(versions, dtype=object)[codes]


def test_a_new_control_instance_resumes_the_canary(model_repo: Path, spec: dict) -> None:
    first = ModelStates(spec, "rollout:app")
    a = _service(model_repo, first, "a")

    async def start() -> TrafficChange:
        await a.set_traffic(
            {"default": "1", "candidates": [{"version": "2", "weight": 30}], "salt": "q|1"}, NAMES
        )
        return await a.set_traffic(
            {"default": "1", "candidates": [{"version": "2", "weight": 40}]}, NAMES
        )

    change = asyncio.run(start())
    before = _assigned(a)
    replaced = ModelStates(spec, "rollout:app")  # the actor died; its successor reads the store
    state = replaced.get("churn")
    assert (
        state["generation"] == change.generation and state["epoch"] == first.epoch != replaced.epoch
    )
    assert (
        state["policy"]["salt"] == "q|1" and state["policy"]["buckets"] == change.policy["buckets"]
    )
    assert [h["generation"] for h in replaced.history("churn")] == list(
        range(1, change.generation + 1)
    )
    b = _service(
        model_repo, replaced, "b"
    )  # a new replica (or the restarted app) under the successor
    asyncio.run(b.sync.ensure_started())
    np.testing.assert_array_equal(_assigned(b), before)  # the same customers on the same versions
    asyncio.run(a.sync.reconcile())  # the old replica sees nothing new: same epoch, same generation
    np.testing.assert_array_equal(_assigned(a), before)
    assert replaced.get("churn")["generation"] == change.generation
    history = asyncio.run(b.traffic()).history  # the status lists the last changes
    assert history[-1]["generation"] == change.generation
    assert history[-1]["changes"]["policy"]["candidates"] == [{"version": "2", "weight": 40.0}]
    other_app = ModelStates(spec, "rollout:other")
    assert other_app.get("churn")["policy"] is None  # applications keep their state apart


def test_a_live_change_survives_a_restart_with_the_same_serve_config(
    model_repo: Path, spec: dict
) -> None:
    config = {
        "rollout": {"churn": {"default": "1", "candidates": [{"version": "2", "weight": 10}]}}
    }
    a = _service(model_repo, ModelStates(spec), "a", **config)
    asyncio.run(a.sync.ensure_started())
    seeded = _assigned(a)
    assert abs(np.mean(seeded == "2") - 0.10) < 0.01
    asyncio.run(
        a.set_traffic({"default": "1", "candidates": [{"version": "2", "weight": 25}]}, NAMES)
    )
    raised = _assigned(a)
    assert np.all(raised[seeded == "2"] == "2")  # the seeded salt and buckets carry on
    b = _service(
        model_repo, ModelStates(spec), "b", **config
    )  # restarted: the same config is seen again
    asyncio.run(b.sync.ensure_started())
    np.testing.assert_array_equal(_assigned(b), raised)


def test_a_store_that_is_down_fails_the_change_and_changes_nothing(tmp_path: Path) -> None:
    dead = RedisSharedState(
        "redis://127.0.0.1:1/0", where=redis_location("redis://127.0.0.1:1/0"), timeout_s=0.2
    )
    states = ModelStates(dead)
    with pytest.raises(DependencyUnavailable, match="shared state"):
        states.update("churn", {"policy": {"default": "1", "candidates": []}})
    states.store = SqliteSharedState(tmp_path / "s.sqlite")
    assert states.get("churn")["generation"] == 0
