"""Redis specifics: pending decisions expire with the reward window; a down server is a 503."""

from __future__ import annotations

import socket
from typing import Any

import numpy as np
import pytest
import redis

from loadtests.bench.bandit import run_bandit_bench
from serving.bandit.router import BanditRouter
from serving.errors import DependencyUnavailable
from serving.settings import BanditSettings


def test_pending_keys_live_for_the_reward_window(redis_router: Any, redis_url: str) -> None:
    router = redis_router(holdout_share=0.0, contact_cap=0, reward_window_s=120)
    d = router.decide_sync(
        np.arange(4), np.zeros((4, 2), np.float32), eligible=np.ones(4, bool), model_versions={}
    )
    router.feedback_sync(d.decision_id[0], 1.0)  # waits for its batch's group commit
    client = redis.Redis.from_url(redis_url)
    keys = [k.decode() for k in client.keys(f"*:p:{d.batch_id}:*")]
    assert len(keys) == 3  # meta, context, once-only rewards
    assert all(0 < client.pttl(k) <= 120_000 for k in keys)
    assert client.xlen(router.store.log_key) == 1 and client.xlen(router.store.rewards_key) == 1
    for k in keys:
        client.delete(k)  # what the TTL does at the end of the window
    with pytest.raises(Exception) as e:
        router.feedback_sync(d.decision_id[1], 1.0)
    assert e.value.__class__.__name__ == "DecisionNotFound"


def test_unreachable_redis_is_dependency_unavailable() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings = BanditSettings(backend="redis", redis_url=f"redis://127.0.0.1:{port}/0")
    with pytest.raises(DependencyUnavailable):
        BanditRouter(settings)


def test_bench_reports_both_backends(redis_url: str) -> None:
    out = run_bandit_bench(redis_url=redis_url, n=20, repeats=1)
    for backend in ("embedded", "redis"):
        assert set(out[backend]) == {"uniform", "thompson", "linucb", "lin_ts"}
        assert all(v["decisions_per_s"] > 0 for v in out[backend].values())
    assert redis.Redis.from_url(redis_url).keys("*bench-*") == []  # cleaned up
