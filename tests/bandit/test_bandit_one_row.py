"""The single-customer fast paths give the answers of the vectorized ones, row for row:
the holdout hash, the categorical draw, the whole decision, and the contact ledger."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from serving.bandit.policies import sample_actions, sample_one
from serving.bandit.router import BanditRouter, holdout_mask, holdout_one
from serving.bandit.state.ledger import ContactLedger
from serving.settings import BanditSettings
from tests.bandit.test_bandit_ledger import reservation


def test_holdout_one_is_the_vector_hash() -> None:
    rng = np.random.default_rng(0)
    ids = np.concatenate(
        [rng.integers(-(1 << 62), 1 << 62, 20_000), [0, -1, (1 << 63) - 1, -(1 << 63)]]
    )
    for share, salt in ((0.05, "s1"), (0.5, "other salt"), (0.0, "s1")):
        one = np.array([holdout_one(int(i), share, salt) for i in ids])
        np.testing.assert_array_equal(one, holdout_mask(ids, share, salt))
    assert 0 < np.mean([holdout_one(int(i), 0.5, "s") for i in ids]) < 1


def test_sample_one_draws_what_sample_actions_draws() -> None:
    probs = np.random.default_rng(1).dirichlet(np.ones(5), size=2_000)
    probs[::7] = [0.0, 0.0, 1.0, 0.0, 0.0]  # a sure arm, and rows with impossible ones
    a, b = np.random.default_rng(7), np.random.default_rng(7)
    for row in probs:
        arm, prop = sample_actions(row[None], a)
        assert sample_one(row, b) == (int(arm[0]), float(prop[0]))


@pytest.mark.parametrize("policy", ["thompson", "linucb", "lin_ts", "uniform"])
def test_decide_one_equals_the_rows_path(tmp_path: Path, policy: str) -> None:
    """Same seed, same state: the one-row path and the batch path of one row agree on every
    reason, arm, propensity and policy version (holdout, not found, and policy rows)."""
    settings = dict(policy=policy, seed=3, holdout_share=0.3, contact_cap=0)
    one = BanditRouter(BanditSettings(state_path=str(tmp_path / "a"), **settings))
    rows = BanditRouter(BanditSettings(state_path=str(tmp_path / "b"), **settings))
    try:
        rng = np.random.default_rng(4)
        for cid in rng.integers(0, 1 << 40, 400).tolist():
            ids, x = np.array([cid]), rng.random((1, len(one.context_names))).astype(np.float32)
            ok = np.array([rng.random() > 0.1])
            got, want = one._decide_one(ids, x, ok), rows._decide_rows(ids, x, ok)
            for g, w in zip(got[:3], want[:3]):
                np.testing.assert_array_equal(g, w)
                assert g.dtype == w.dtype
            assert got[3].rsplit(":", 1)[0] == want[3].rsplit(":", 1)[0]
    finally:
        one.close()
        rows.close()


def test_one_customer_reservations_write_what_a_batch_writes(tmp_path: Path) -> None:
    """A customer reserved alone (the scalar path) and the same customer inside a batch of
    two (the vector path) end with the same slots, through the window and a cap change."""
    alone, batch = ContactLedger(tmp_path / "a"), ContactLedger(tmp_path / "b")
    other = itertools.count(1_000)
    steps = [(1.0, 3), (2.0, 3), (3.0, 3), (4.0, 3), (150.0, 3), (151.0, 2), (152.0, 4), (400.0, 1)]
    for now, cap in steps:
        got = alone.reserve(reservation([7], now=now, cap=cap))
        want = batch.reserve(reservation([7, next(other)], now=now, cap=cap))
        assert got.tolist() == want.tolist()[:1]
        with alone.env.begin() as a, batch.env.begin() as b:
            key = (7).to_bytes(8, "big", signed=True)
            assert a.get(key) == b.get(key)
    assert alone.counts()[7] == 1
