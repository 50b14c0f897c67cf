"""Done-when checks on simulated environments with known reward rates, through the real router."""

from __future__ import annotations

from typing import Any

import numpy as np

from serving.bandit.simulate import Environment, simulate

SIM: dict[str, Any] = {"holdout_share": 0.0, "contact_cap": 0}
CONTEXT_FREE = Environment.context_free([0.10, 0.20, 0.30, 0.50, 0.25])
# arm 0 pays for high x0, arm 1 for low x0: no single arm is good for everyone
CONTEXTUAL = Environment(
    np.array([[0.1, 0.6, 0.0], [0.7, -0.6, 0.0], [0.3, 0.0, 0.0], [0.3, 0.0, 0.0], [0.2, 0.0, 0.0]])
)


def run(make: Any, policy: str, env: Environment, name: str, **kw: Any) -> Any:
    router = make(policy=policy, name=name, **SIM, **kw)
    return simulate(router, env, rounds=40, batch=50, seed=1)


def test_thompson_regret_well_below_uniform(embedded_router: Any) -> None:
    uniform = run(embedded_router, "uniform", CONTEXT_FREE, "u")
    thompson = run(embedded_router, "thompson", CONTEXT_FREE, "ts")
    assert thompson.total_regret < 0.25 * uniform.total_regret
    assert thompson.arm_counts.argmax() == 3


def test_contextual_policies_beat_context_free_when_rewards_depend_on_context(
    embedded_router: Any,
) -> None:
    thompson = run(embedded_router, "thompson", CONTEXTUAL, "ts")
    for policy in ("linucb", "lin_ts"):
        contextual = run(embedded_router, policy, CONTEXTUAL, policy)
        assert contextual.total_regret < 0.7 * thompson.total_regret, policy


def test_discounting_follows_a_shift(embedded_router: Any) -> None:
    after = Environment.context_free([0.50, 0.20, 0.30, 0.10, 0.25])  # best arm moves from 3 to 0

    def late_regret(discount: float, name: str) -> float:
        router = embedded_router(policy="thompson", name=name, discount=discount, **SIM)
        res = simulate(router, CONTEXT_FREE, rounds=60, batch=50, seed=2, shift=after, shift_at=40)
        return float(res.regret[-1] - res.regret[-501])  # the last 10 rounds

    # forgetting with a memory of ~1,000 rewards recovers; remembering 2,000 pre-shift rewards
    # does not
    assert late_regret(0.999, "disc") < 0.3 * late_regret(1.0, "nodisc")
