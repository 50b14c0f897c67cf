"""Consent, pseudonymous logs and erasure in the router, on both backends."""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np
import pytest

from serving.bandit.ope import load_log
from serving.bandit.router import BanditRouter, Decisions
from serving.bandit.state import Reason
from serving.errors import DecisionNotFound
from serving.privacy.pseudonym import pseudonyms
from tests.bandit.conftest import logged_batches, stored_contacts

KEY = bytes(range(16))
T0 = time.time()


def decide(
    router: BanditRouter, ids: Any, opted_out: Any = None, eligible: Any = None
) -> Decisions:
    ids = np.asarray(ids, dtype=np.int64)
    x = (
        np.random.default_rng(len(ids))
        .random((len(ids), len(router.context_names)))
        .astype(np.float32)
    )
    ok = np.ones(len(ids), bool) if eligible is None else np.asarray(eligible)
    return router.decide_sync(
        ids,
        x,
        eligible=ok,
        model_versions={"churn": "1"},
        now=T0,
        opted_out=None if opted_out is None else np.asarray(opted_out, bool),
    )


def _router(factory: Any, **kw: Any) -> BanditRouter:
    return factory(name=f"p{os.getpid()}_{time.monotonic_ns()}", **kw)


def test_opted_out_rows_get_no_contact_with_propensity_one_on_both_paths(any_router: Any) -> None:
    router = _router(any_router, holdout_share=0.0, contact_cap=3)
    ids = np.arange(200)
    out = ids % 3 == 0
    found = ids % 7 != 0  # an opted-out customer without features is still opted out
    d = decide(router, ids, out, found)
    assert (d.reason[out] == "opted_out").all()
    assert (d.action[out] == "no_contact").all() and (d.propensity[out] == 1.0).all()
    assert set(d.reason[~out & found]) == {"policy"} and set(d.reason[~out & ~found]) == {
        "not_found"
    }
    one = decide(router, [42], [True])  # the single-customer path agrees
    assert (
        one.reason[0] == "opted_out" and one.action[0] == "no_contact" and one.propensity[0] == 1.0
    )
    none = decide(router, ids, np.zeros(len(ids), bool))  # an all-false mask changes nothing
    assert "opted_out" not in set(none.reason)


def test_opted_out_rows_reserve_no_contact_and_teach_the_policy_nothing(any_router: Any) -> None:
    router = _router(any_router, holdout_share=0.0, contact_cap=1)
    for _ in range(3):
        d = decide(router, [5, 6], [True, False])
    router.flush()
    contacts = stored_contacts(router.settings)
    assert contacts.get(5, 0) == 0  # never counted as a contact
    before = router.store.read_state(router.state_key, (router.layout.n_arms, router.layout.width))[
        1
    ]
    fb = router.feedback_sync(d.decision_id[0], 1.0)
    assert fb["reason"] == "opted_out" and fb["action"] == "no_contact" and not fb["policy_updated"]
    after = router.store.read_state(router.state_key, (router.layout.n_arms, router.layout.width))[
        1
    ]
    np.testing.assert_array_equal(before, after)
    log = load_log(router.settings, store=router.store)
    rows = log.reason == Reason.OPTED_OUT
    assert rows.sum() == 3 and (log.propensity[rows] == 1.0).all()
    assert (log.arm[rows] == router.arms.index("no_contact")).all()


def test_the_log_holds_keyed_pseudonyms_never_ids(any_router: Any) -> None:
    router = _router(any_router, holdout_share=0.0, contact_cap=0)
    router.pseudonym_key = KEY
    ids = np.arange(1000, 1100)
    decide(router, ids)
    decide(router, [1000])
    decide(router, [5000, 5001], eligible=[False, True])  # no features: nothing to keep of 5000
    router.flush()
    logged = np.concatenate([b.customer_ids for b in logged_batches(router.settings).values()])
    assert not np.isin(logged, [*ids, 5000, 5001]).any()
    assert set(logged.tolist()) == set(pseudonyms(np.array([*ids, 5001]), KEY).tolist()) | {
        0
    }  # equality survives


def test_an_opted_out_customer_without_features_leaves_no_pseudonym(any_router: Any) -> None:
    """An erased customer asked about again: no features, and its suppression entry makes it
    opted out. The answer says opted_out; the log keeps the row without its pseudonym."""
    router = _router(any_router, holdout_share=0.0, contact_cap=0)
    router.pseudonym_key = KEY
    for ids, out, found in (([7], [True], [False]), ([7, 8], [True, True], [False, True])):
        d = decide(router, ids, out, found)  # the single-customer path, then the rows path
        assert (d.reason == "opted_out").all() and (d.action == "no_contact").all()
    router.flush()
    logged = np.concatenate([b.customer_ids for b in logged_batches(router.settings).values()])
    assert pseudonyms(np.array([7]), KEY)[0] not in logged
    assert pseudonyms(np.array([8]), KEY)[0] in logged  # a found opted-out row is kept


def test_erasure_makes_the_customers_rows_unlinkable_and_drops_rewards_and_contacts(
    any_router: Any,
) -> None:
    router = _router(any_router, holdout_share=0.0, contact_cap=5, epsilon=1.0)
    router.pseudonym_key = KEY
    a = decide(router, [7, 8, 9])
    b = decide(router, [7])
    rewarded = [a.decision_id[0], a.decision_id[1]]
    for did in rewarded:
        router.feedback_sync(did, 1.0)
    router.flush()
    contacted = stored_contacts(router.settings)
    done = router.erase(7)
    assert done["decision_rows"] == 2 and done["rewards"] == 1
    assert done["contacts"] == int(contacted.get(7, 0) > 0)
    gone = pseudonyms(np.array([7]), KEY)[0]
    batches, rewards = router.store.read_log()
    rows = {bb.batch_id: bb for bb in batches}
    assert all(gone not in bb.customer_ids for bb in batches)
    assert rows[a.batch_id].reason[0] == Reason.OPTED_OUT and rows[a.batch_id].arm_index[0] == -1
    assert not rows[a.batch_id].context[0].any() and np.isnan(rows[a.batch_id].propensity[0])
    assert (
        rows[a.batch_id].customer_ids[1] == pseudonyms(np.array([8]), KEY)[0]
    )  # the others untouched
    assert (a.batch_id, 0) not in rewards and (a.batch_id, 1) in rewards
    assert 7 not in stored_contacts(router.settings)
    with pytest.raises(DecisionNotFound):  # a late reward for an erased row is refused
        router.feedback_sync(b.decision_id[0], 1.0)
    assert router.erase(7)["decision_rows"] == 0  # idempotent
