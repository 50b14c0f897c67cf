"""Policy math: distributions, the epsilon floor, sampling, learned preferences, discounting."""

from __future__ import annotations

import numpy as np
import pytest

from serving.bandit.policies import Layout, Policy, aggregate, row_increments, sample_actions
from serving.bandit.router import holdout_mask
from serving.bandit.state import discounted_update, group_positions

LAYOUT = Layout(n_arms=4, dim=2)


def trained_stats(rng: np.random.Generator, n: int = 3000) -> np.ndarray:
    """Arm 0 pays when x0 is high, arm 1 when x0 is low, arms 2-3 never."""
    x = rng.random((n, 2))
    arm = rng.integers(0, 4, n)
    mean = np.select([arm == 0, arm == 1], [x[:, 0], 1 - x[:, 0]], 0.05)
    r = (rng.random(n) < mean).astype(float)
    return aggregate(LAYOUT, arm, row_increments(LAYOUT, x, r))


@pytest.mark.parametrize("kind", ["uniform", "thompson", "linucb", "lin_ts", "greedy"])
def test_probabilities_are_distributions_with_floor(kind: str) -> None:
    rng = np.random.default_rng(0)
    p = Policy(kind, LAYOUT, epsilon=0.2).probabilities(
        rng.random((500, 2)), trained_stats(rng), rng
    )
    assert p.shape == (500, 4)
    np.testing.assert_allclose(p.sum(axis=1), 1.0)
    assert p.min() >= 0.2 / 4 - 1e-12


def test_sampled_actions_follow_the_probabilities() -> None:
    rng = np.random.default_rng(1)
    probs = np.tile([0.1, 0.2, 0.3, 0.4], (40_000, 1))
    arm, prop = sample_actions(probs, rng)
    freq = np.bincount(arm, minlength=4) / len(arm)
    np.testing.assert_allclose(freq, [0.1, 0.2, 0.3, 0.4], atol=0.01)
    np.testing.assert_array_equal(prop, probs[np.arange(len(arm)), arm])


@pytest.mark.parametrize("kind", ["linucb", "lin_ts", "greedy"])
def test_contextual_policies_learn_the_context_dependence(kind: str) -> None:
    rng = np.random.default_rng(2)
    stats = trained_stats(rng)
    x = np.array([[0.95, 0.5], [0.05, 0.5]])
    p = Policy(kind, LAYOUT, epsilon=0.0, samples=512).probabilities(x, stats, rng)
    assert p[0].argmax() == 0 and p[1].argmax() == 1
    assert p[0, 0] > 0.8 and p[1, 1] > 0.8


def test_thompson_prefers_the_arm_with_more_successes() -> None:
    stats = LAYOUT.zeros()
    stats[:, 0] = 200  # observations per arm
    stats[:, 1] = [20, 40, 120, 60]  # successes
    rng = np.random.default_rng(3)
    p = Policy("thompson", LAYOUT, epsilon=0.0).probabilities(np.zeros((3, 2)), stats, rng)
    assert (p[:, 2] > 0.95).all()


def test_batched_discounted_update_equals_sequential_updates() -> None:
    rng = np.random.default_rng(4)
    inc = row_increments(LAYOUT, rng.random((5, 2)), rng.random(5))
    arms = rng.integers(0, 4, 5)
    seq = LAYOUT.zeros() + 1.0
    for i in range(5):
        seq = discounted_update(seq, inc[i : i + 1], arms[i : i + 1], 0.9)
    np.testing.assert_allclose(discounted_update(LAYOUT.zeros() + 1.0, inc, arms, 0.9), seq)


def test_holdout_is_stable_sized_and_salted() -> None:
    ids = np.arange(200_000, dtype=np.int64)
    held = holdout_mask(ids, 0.05, "s1")
    assert abs(held.mean() - 0.05) < 0.003
    np.testing.assert_array_equal(
        holdout_mask(ids[::-7], 0.05, "s1"), held[::-7]
    )  # per id, not per batch
    assert (holdout_mask(ids, 0.05, "s2") != held).any()
    assert not holdout_mask(ids, 0.0, "s1").any()


def test_group_positions_counts_earlier_duplicates() -> None:
    np.testing.assert_array_equal(group_positions(np.array([5, 3, 5, 5, 3, 9])), [0, 0, 1, 2, 1, 0])
