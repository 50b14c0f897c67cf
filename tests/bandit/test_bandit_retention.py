"""Retention of the decision log: by time, then by size, never a decision whose reward
window is still open. Each test runs against both stores (sqlite file, real Redis)."""

from __future__ import annotations

import time

import numpy as np
import pytest
from pydantic import ValidationError

from serving.bandit.router import BanditRouter
from serving.settings import BanditSettings
from tests.bandit.conftest import RouterFactory, contexts, logged_batches


def _decide(router: BanditRouter, ids: np.ndarray) -> list[str]:
    d = router.decide_sync(
        ids, contexts(len(ids)), eligible=np.ones(len(ids), bool), model_versions={}
    )
    assert router.flush(5.0)
    return [i for i in d.decision_id.tolist() if i is not None]


def test_retention_below_the_reward_window_is_refused() -> None:
    with pytest.raises(ValidationError, match="log_retention_s"):
        BanditSettings(reward_window_s=3600, log_retention_s=60)


def test_time_retention_drops_old_decisions_and_keeps_recent_ones(
    any_router: RouterFactory,
) -> None:
    router = any_router(
        reward_window_s=3600, log_retention_s=7200, contact_cap=0, trim_interval_s=3600
    )
    _decide(router, np.arange(50))
    assert len(logged_batches(router.settings)) == 1
    kept = router.trim(
        now=time.time() + 2 * 3600 - 60
    )  # 1 h 59 min later: inside the 2 h retention
    assert kept.decisions == 0 and len(logged_batches(router.settings)) == 1
    gone = router.trim(now=time.time() + 2 * 3600 + 60)  # 2 h 1 min later: past it
    assert gone.decisions >= 1
    assert logged_batches(router.settings) == {}


def test_size_cap_trims_only_closed_reward_windows_oldest_first(any_router: RouterFactory) -> None:
    router = any_router(
        reward_window_s=1.0,
        log_retention_s=3600,
        contact_cap=0,
        holdout_share=0.0,
        log_max_mb=1e-6,
        trim_interval_s=3600,
    )  # a 1-byte cap: everything is "too big"
    old = {b for b in logged_batches_after(router, np.arange(0, 40))}
    time.sleep(1.3)  # the first batches' reward window closes
    fresh_ids = _decide(router, np.arange(40, 80))
    fresh = set(logged_batches(router.settings)) - old
    done = router.trim()
    left = set(logged_batches(router.settings))
    assert left == fresh and not (left & old)  # the closed window went, the open one stayed
    assert done.over_size  # still over the cap, but nothing left may go
    assert router.feedback_sync(fresh_ids[0], 1.0)["reward"] == 1.0  # its reward is still taken


def logged_batches_after(router: BanditRouter, ids: np.ndarray) -> set[str]:
    _decide(router, ids)
    return set(logged_batches(router.settings))
