"""``read_since``: what the rollout evidence reads on each look, on both stores: from a
moment on at first, then exactly what was written after the previous look."""

from __future__ import annotations

import time

import numpy as np

from tests.bandit.conftest import RouterFactory


def test_read_since_returns_only_what_is_new(any_router: RouterFactory) -> None:
    router = any_router()
    dim = router.layout.dim
    now = time.time()

    def decide(t: float):  # type: ignore[no-untyped-def]
        d = router.decide_sync(
            np.arange(4),
            np.zeros((4, dim), np.float32),
            eligible=np.ones(4, bool),
            model_versions={"churn": "3"},
            now=t,
        )
        router.flush()
        return d

    old, new = decide(now - 30), decide(now)
    router.feedback_sync(old.decision_id[0], 1.0, now=time.time())
    batches, rewards, cursor = router.store.read_since(now - 1)  # a first look: from a moment on
    assert [b.batch_id for b in batches] == [new.batch_id]
    assert [(b, r, v) for b, r, v, _ in rewards] == [
        (old.batch_id, 0, 1.0)
    ]  # recorded after the moment
    router.feedback_sync(new.decision_id[1], 0.5, now=time.time())
    later = decide(time.time())
    batches, rewards, cursor = router.store.read_since(now - 1, cursor)  # then what came after
    assert [b.batch_id for b in batches] == [later.batch_id]
    assert (new.batch_id, 1, 0.5) in [
        (b, r, v) for b, r, v, _ in rewards
    ]  # (sqlite may repeat the old one)
    batches, rewards, cursor = router.store.read_since(now - 1, cursor)
    assert batches == []  # a reward may come again, never a batch
    batches, rewards, _ = router.store.read_since(now - 60)
    assert {b.batch_id for b in batches} == {old.batch_id, new.batch_id, later.batch_id} and len(
        rewards
    ) == 2
