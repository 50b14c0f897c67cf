"""The shared documents every replica reads: the same contract on sqlite and on a real Redis."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from serving.errors import DependencyUnavailable
from serving.shared_state import (
    RedisSharedState,
    SharedState,
    SqliteSharedState,
    Watched,
    open_shared_state,
    redis_location,
)
from serving.settings import Settings


@pytest.fixture(params=["sqlite", "redis"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SharedState]:
    if request.param == "sqlite":
        s: SharedState = SqliteSharedState(tmp_path / "shared.sqlite")
    else:
        url = request.getfixturevalue("redis_url")
        s = RedisSharedState(url, where=redis_location(url))
    yield s
    s.close()


def test_put_get_delete_and_generations(store: SharedState) -> None:
    assert store.generation("rollout") == 0 and store.get("rollout", "churn") is None
    g1 = store.put("rollout", "churn", {"default": "3", "salt": "a|b"})
    g2 = store.put("rollout", "engagement", {"default": "1"})
    assert g2 == g1 + 1 == store.generation("rollout") and g1 > 1, "generations start at random"
    assert store.get("rollout", "churn") == {"default": "3", "salt": "a|b"}
    assert store.items("rollout") == {
        "churn": {"default": "3", "salt": "a|b"},
        "engagement": {"default": "1"},
    }
    assert store.generation("tokens") == 0 and store.items("tokens") == {}
    assert store.delete("rollout", "churn") is True
    assert store.get("rollout", "churn") is None and store.generation("rollout") > g2


def test_a_second_handle_sees_the_same_documents(
    store: SharedState, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Two replicas are two handles on one store."""
    other = (
        SqliteSharedState(store.path)
        if isinstance(store, SqliteSharedState)
        else RedisSharedState(request.getfixturevalue("redis_url"), where="x")
    )
    store.put("consent", "42", {"opted_out": True})
    assert other.get("consent", "42") == {"opted_out": True}
    assert other.generation("consent") == store.generation("consent")
    other.close()


def test_watched_reloads_only_when_the_generation_moves(store: SharedState) -> None:
    seen: list[dict] = []
    w = Watched(store, "tokens")
    w.on_change(seen.append)
    assert w.refresh() is True and w.snapshot == {}
    assert w.refresh() is False
    store.put("tokens", "crm", {"role": "feedback"})
    w.start(0.05)
    deadline = time.time() + 2
    while "crm" not in w.snapshot and time.time() < deadline:
        time.sleep(0.02)
    w.stop()
    assert w.snapshot == {"crm": {"role": "feedback"}} and seen[-1] == w.snapshot


def test_a_redis_that_is_down_is_a_503_naming_it_without_the_password() -> None:
    url = "redis://:s3cr3t-pw@127.0.0.1:1/0"
    s = RedisSharedState(url, where=redis_location(url), timeout_s=0.2)
    with pytest.raises(DependencyUnavailable) as err:
        s.get("rollout", "churn")
    assert "127.0.0.1:1/0" in err.value.message and "s3cr3t" not in str(err.value)
    w = Watched(s, "rollout")
    w.snapshot = {"kept": {}}
    w.start(0.05)
    time.sleep(0.3)
    w.stop()
    assert w.errors >= 1 and w.snapshot == {"kept": {}}, "a store that is down keeps the last copy"


def test_the_one_state_switch_chooses_the_store(tmp_path: Path, redis_url: str) -> None:
    emb = open_shared_state(Settings(data_dir=tmp_path))
    assert isinstance(emb, SqliteSharedState) and emb.path.is_relative_to(tmp_path)
    red = open_shared_state(Settings(data_dir=tmp_path, state="redis", redis_url=redis_url))
    assert isinstance(red, RedisSharedState)
    red.put("x", "k", {"v": 1})
    assert emb.get("x", "k") is None and red.get("x", "k") == {"v": 1}


def test_a_wiped_store_never_repeats_the_generation_a_replica_saw(redis_url: str) -> None:
    """Redis flushed while replicas run: its counters start again, but from elsewhere."""
    import redis

    store = RedisSharedState(redis_url, where="x")
    w = Watched(store, "tokens")
    store.put("tokens", "a", {"v": 1})
    w.refresh()
    redis.Redis.from_url(redis_url).flushdb()
    store.put("tokens", "b", {"v": 2})
    assert w.refresh() is True and w.snapshot == {"b": {"v": 2}}
