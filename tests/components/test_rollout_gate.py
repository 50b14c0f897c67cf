"""The promotion gate in simulation: an always-valid confidence sequence on (candidate -
default) mean reward, promoted only above -margin."""

from __future__ import annotations

import numpy as np

from serving.components.evidence import PROMOTABLE, Stats, compare, promotes_equal_at

MARGIN, P, CONFIDENCE = 0.01, 0.10, 0.95
STATED = promotes_equal_at(P * (1 - P), confidence=CONFIDENCE, margin=MARGIN)


def _verdict(kc: int, nc: int, kd: int, nd: int) -> dict:
    """Bernoulli rewards: k successes of n (sum of squares = sum)."""
    stats = {"1": Stats(nd, float(kd), float(kd)), "2": Stats(nc, float(kc), float(kc))}
    return compare(stats, "1", "2", confidence=CONFIDENCE, margin=MARGIN, min_decisions=200)


def _looks(p_c: float, p_d: float, seed: int, step: int, last: int) -> list[dict]:
    """One rollout looked at every ``step`` decisions per arm up to ``last``."""
    rng = np.random.default_rng(seed)
    looks = last // step
    kc = np.cumsum(rng.binomial(step, p_c, looks))
    kd = np.cumsum(rng.binomial(step, p_d, looks))
    return [
        _verdict(int(a), (i + 1) * step, int(b), (i + 1) * step)
        for i, (a, b) in enumerate(zip(kc, kd))
    ]


def test_the_stated_n_is_finite_and_plausible() -> None:
    assert STATED is not None and 10_000 < STATED < 200_000


def test_half_the_reward_is_never_promoted_at_any_look() -> None:
    """Looked at every 250 decisions per arm up to twice the n where an equal one passes."""
    for seed in range(150):
        for look in _looks(P / 2, P, seed, 250, 2 * STATED):
            assert look.verdict not in PROMOTABLE, look


def test_an_equal_candidate_promotes_at_least_one_minus_alpha_of_the_time_at_the_stated_n() -> None:
    rng = np.random.default_rng(7)
    runs = 600
    kc, kd = rng.binomial(STATED, P, runs), rng.binomial(STATED, P, runs)
    promoted = np.mean(
        [_verdict(int(a), STATED, int(b), STATED).verdict in PROMOTABLE for a, b in zip(kc, kd)]
    )
    assert promoted >= CONFIDENCE, promoted


def test_the_sequence_stays_valid_however_often_it_is_looked_at() -> None:
    """Equal rewards, a look every 200 decisions: the share of rollouts whose bounds ever
    exclude the true difference (0) stays within alpha."""
    misses = 0
    runs = 200
    for seed in range(runs):
        looks = _looks(P, P, 1000 + seed, 200, 40_000)
        misses += any(
            lk.difference and not lk.difference.low <= 0 <= lk.difference.high for lk in looks
        )
    assert misses / runs <= 1 - CONFIDENCE, misses


def test_few_decisions_are_insufficient_and_say_how_many_more() -> None:
    got = _verdict(2, 20, 4, 20)
    assert got.verdict == "insufficient" and got.more_per_arm >= 180 and got.difference is None
    later = _verdict(int(0.1 * 5000), 5000, int(0.1 * 5000), 5000)
    assert later.verdict == "inconclusive" and 0 < later.more_per_arm < 10 * STATED
    assert later.difference.low < -MARGIN < later.difference.value


def test_a_clearly_worse_candidate_is_inferior_and_a_better_one_better() -> None:
    assert _verdict(2_500, 50_000, 5_000, 50_000).verdict == "inferior"
    assert _verdict(7_500, 50_000, 5_000, 50_000).verdict == "better"
    conversions_only = compare(
        {"1": Stats(1000, 1000.0, 1000.0), "2": Stats(1000, 1000.0, 1000.0)}, "1", "2"
    )
    assert (
        conversions_only.verdict == "insufficient"
    )  # every reward 1, none missing: no variance, no evidence
