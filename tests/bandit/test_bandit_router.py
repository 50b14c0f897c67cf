"""Router behaviour on both backends: decisions, holdout, caps, feedback, shared state, the log."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pytest

from serving.bandit.ope import load_log
from serving.bandit.router import BanditRouter, Decisions, holdout_mask
from serving.errors import Conflict, DecisionNotFound, InvalidRequest

T0 = time.time()  # real time: retention trims decisions older than 30 days
NO_HOLDOUT: dict[str, Any] = {"holdout_share": 0.0, "contact_cap": 0}


def decide(
    router: BanditRouter, ids: Any, *, eligible: Any = None, now: float = T0, **kw: Any
) -> Decisions:
    ids = np.asarray(ids, dtype=np.int64)
    x = np.random.default_rng(int(ids.sum()) % 1000).random((len(ids), len(router.context_names)))
    ok = np.ones(len(ids), bool) if eligible is None else np.asarray(eligible)
    return router.decide_sync(
        ids, x.astype(np.float32), eligible=ok, model_versions={"churn": "3"}, now=now, **kw
    )


def test_decisions_are_columnar_in_request_order(any_router: Any) -> None:
    router = any_router(**NO_HOLDOUT)
    eligible = np.array([True, False, True, True])
    d = decide(router, [11, 12, 13, 11], eligible=eligible)
    assert d.action[1] is None and d.decision_id[1] is None and np.isnan(d.propensity[1])
    assert d.arm_index[1] == -1 and d.reason[1] == "not_found"
    assert list(d.reason[eligible]) == ["policy"] * 3
    assert all(a in router.arms for a in d.action[eligible])
    assert ((d.propensity[eligible] > 0) & (d.propensity[eligible] <= 1)).all()
    assert d.decision_id[0] == f"{d.batch_id}-0" and d.decision_id[3] == f"{d.batch_id}-3"
    assert d.policy_version.startswith("thompson:")
    assert d.propensity.dtype == np.float64 and d.arm_index.dtype == np.int64
    assert [router.arms[i] for i in d.arm_index[eligible]] == list(d.action[eligible])


def test_bad_shapes_are_the_callers_mistake(any_router: Any) -> None:
    router = any_router()
    with pytest.raises(InvalidRequest) as e:
        router.decide_sync(
            np.arange(3), np.zeros((3, 5), np.float32), eligible=np.ones(3, bool), model_versions={}
        )
    assert e.value.field == "context"


def test_holdout_customers_always_get_the_control_arm(any_router: Any) -> None:
    router = any_router(holdout_share=0.3, contact_cap=0)
    ids = np.arange(400)
    held = holdout_mask(ids, 0.3, router.settings.holdout_salt)
    for t in range(2):
        d = decide(router, ids, now=T0 + t)
        assert (d.action[held] == "no_contact").all() and (d.reason[held] == "holdout").all()
        assert (d.propensity[held] == 1.0).all()
        assert (d.reason[~held] == "policy").all()


def test_contact_cap_within_window_then_released(any_router: Any) -> None:
    router = any_router(
        policy="uniform",
        epsilon=1.0,
        holdout_share=0.0,
        contact_cap=2,
        contact_window_s=100,
        arms=["a", "b", "no_contact"],
    )
    ids = np.full(60, 7)  # one customer decided 60 times in one batch: at most 2 contacts
    d = decide(router, ids)
    contacted = d.action != "no_contact"
    assert contacted.sum() == 2
    assert (d.reason[d.reason == "contact_cap"].size > 0) and (
        d.propensity[d.reason == "contact_cap"] == 1
    ).all()
    later = decide(router, ids[:10], now=T0 + 50)
    assert (later.action == "no_contact").all()  # still inside the window
    fresh = decide(router, ids, now=T0 + 101)
    assert (fresh.action != "no_contact").sum() == 2


def test_feedback_errors_404_409_422(any_router: Any) -> None:
    router = any_router(**NO_HOLDOUT, reward_window_s=60)
    d = decide(router, [1, 2, 3])
    out = router.feedback_sync(d.decision_id[0], 1.0, now=T0 + 1)
    assert out["policy_updated"] is True and out["action"] == d.action[0]
    with pytest.raises(Conflict):
        router.feedback_sync(d.decision_id[0], 0.0, now=T0 + 2)
    with pytest.raises(DecisionNotFound):
        router.feedback_sync(d.decision_id[1], 1.0, now=T0 + 61)  # window over
    with pytest.raises(DecisionNotFound):
        router.feedback_sync("0123456789abcdef-0", 1.0, now=T0 + 1)
    with pytest.raises(DecisionNotFound):
        router.feedback_sync(f"{d.batch_id}-99", 1.0, now=T0 + 1)  # row past the batch
    with pytest.raises(InvalidRequest) as e:
        router.feedback_sync("not-an-id", 1.0)
    assert e.value.field == "decision_id"
    for bad in (float("nan"), 2.0, "x"):
        with pytest.raises(InvalidRequest) as e:
            router.feedback_sync(d.decision_id[2], bad, now=T0 + 1)  # type: ignore[arg-type]
        assert e.value.field == "reward"
    statuses = router.feedback_many(
        [d.decision_id[2], d.decision_id[2], "bad"], [1.0, 1.0, 0.0], now=T0 + 1
    )
    assert list(statuses) == ["ok", "conflict", "invalid"]


def test_holdout_rewards_are_logged_but_do_not_train(any_router: Any) -> None:
    router = any_router(holdout_share=0.5, contact_cap=0)
    d = decide(router, np.arange(40))
    i = int(np.flatnonzero(d.reason == "holdout")[0])
    out = router.feedback_sync(d.decision_id[i], 1.0, now=T0 + 1)
    assert out["reason"] == "holdout" and out["policy_updated"] is False
    router.sync(force=True)
    assert router.stats[:, 0].sum() == 0


def test_replicas_share_state_and_a_restart_keeps_it(any_router: Any) -> None:
    a, b = any_router(**NO_HOLDOUT), any_router(**NO_HOLDOUT)
    d = decide(a, np.arange(30))
    # another replica sees a decision once its group is committed (within one flush interval)
    a.flush()
    assert list(b.feedback_many(list(d.decision_id), np.ones(30), now=T0 + 1)) == ["ok"] * 30
    with pytest.raises(Conflict):  # the once-only check is shared too
        a.feedback_sync(d.decision_id[0], 1.0, now=T0 + 1)
    a.sync(), b.sync()
    np.testing.assert_allclose(a.stats[:, 0].sum(), 30)
    np.testing.assert_allclose(a.stats, b.stats)
    restarted = any_router(**NO_HOLDOUT)
    np.testing.assert_allclose(restarted.stats, a.stats)
    assert restarted.policy_version == a.policy_version


def test_discount_forgets_old_rewards_identically_on_both_backends(any_router: Any) -> None:
    router = any_router(**NO_HOLDOUT, discount=0.5)
    d = decide(router, np.arange(3))
    for i in range(3):
        router.feedback_sync(d.decision_id[i], 1.0, now=T0 + 1)
    router.sync(force=True)
    np.testing.assert_allclose(router.stats[:, 0].sum(), 1 + 0.5 + 0.25)
    np.testing.assert_allclose(router.stats[:, 1].sum(), 1.75)


def test_log_is_replayable_and_joins_rewards(any_router: Any) -> None:
    router = any_router(holdout_share=0.2, contact_cap=0)
    digest = np.arange(5, dtype=np.uint64)
    feature_ts = np.full((5, 2), T0 - 60.0)
    d = decide(
        router,
        [10, 11, 12, 13, 14],
        eligible=[True, True, False, True, True],
        feature_digest=digest,
        feature_ts=feature_ts,
    )
    router.feedback_sync(d.decision_id[0], 1.0, now=T0 + 1)
    assert router.flush(timeout_s=10)
    log = load_log(router.settings, store=router.store)
    assert len(log) == 5
    np.testing.assert_array_equal(log.customer_id, [10, 11, 12, 13, 14])
    np.testing.assert_array_equal(log.arm, d.arm_index)
    np.testing.assert_array_equal(log.propensity, d.propensity)
    assert log.reward[0] == 1.0 and np.isnan(log.reward[1:]).all()
    assert list(log.decision_id[[0, 1]]) == list(d.decision_id[[0, 1]])
    assert log.model_versions[0] == {"churn": "3"} and log.policy_version[0] == d.policy_version
    assert log.context.shape == (5, len(router.context_names))
    assert log.reason[2] == 3 and log.arm[2] == -1  # not_found row kept, in request order
    batches, _ = router.store.read_log()
    np.testing.assert_array_equal(batches[0].feature_digest, digest)
    np.testing.assert_array_equal(batches[0].feature_ts, feature_ts)


def test_build_context_gathers_features_and_scores(embedded_router: Any) -> None:
    router = embedded_router(
        context_features=["engagement_probability", "recency_days", "churn_probability"]
    )
    feats = np.array([[1.0, 2.0], [3.0, 4.0]], np.float32)
    ctx = router.build_context(
        feats, ["orders", "recency_days"], np.array([0.1, 0.2]), np.array([0.7, 0.8])
    )
    np.testing.assert_allclose(ctx, [[0.7, 2.0, 0.1], [0.8, 4.0, 0.2]], rtol=1e-6)
    assert ctx.dtype == np.float32
    with pytest.raises(ValueError, match="recency_days"):
        router.check_feature_names(["orders", "x"])
