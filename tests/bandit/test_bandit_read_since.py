"""``read_since``: what the rollout evidence reads on each look, on both stores: only the
batches decided and the rewards recorded from a moment on."""

from __future__ import annotations

import time

import numpy as np

from tests.bandit.conftest import RouterFactory


def test_read_since_returns_only_what_is_new(any_router: RouterFactory) -> None:
    router = any_router()
    dim = router.layout.dim
    now = time.time()

    def decide(t: float):  # type: ignore[no-untyped-def]
        return router.decide_sync(np.arange(4), np.zeros((4, dim), np.float32), eligible=np.ones(4, bool),
                                  model_versions={"churn": "3"}, now=t)

    old, new = decide(now - 30), decide(now)
    router.flush()
    time.sleep(0.01)
    router.feedback_sync(old.decision_id[0], 1.0, now=time.time())
    mid = time.time()
    time.sleep(0.01)
    router.feedback_sync(new.decision_id[1], 0.5, now=time.time())
    batches, rewards = router.store.read_since(now - 1, mid)
    assert [b.batch_id for b in batches] == [new.batch_id]
    assert [(b, r, v) for b, r, v, _ in rewards] == [(new.batch_id, 1, 0.5)]
    assert mid <= rewards[0][3] <= time.time() + 0.01
    batches, rewards = router.store.read_since(now - 60, now - 60)
    assert {b.batch_id for b in batches} == {old.batch_id, new.batch_id} and len(rewards) == 2
