"""Simulated environments with known reward rates, to measure a router's regret.

The simulation drives the real ``BanditRouter`` (its store, logging and feedback), in
rounds of one batch decision followed by that batch's rewards, so what it measures is
what serving does. Regret is the expected one: the best arm's mean minus the chosen
arm's mean, which is far less noisy than realized rewards.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from serving.bandit.router import BanditRouter


@dataclass(frozen=True)
class Environment:
    """Bernoulli rewards with mean clip(w_k . [1, x]) per arm; contexts uniform in [0, 1]^d."""

    weights: np.ndarray  # (K, d+1)

    @property
    def n_arms(self) -> int:
        return int(self.weights.shape[0])

    @property
    def dim(self) -> int:
        return int(self.weights.shape[1] - 1)

    @classmethod
    def context_free(cls, rates: list[float], dim: int = 2) -> "Environment":
        w = np.zeros((len(rates), dim + 1))
        w[:, 0] = rates
        return cls(w)

    def contexts(self, n: int, rng: np.random.Generator) -> np.ndarray:
        return rng.random((n, self.dim)).astype(np.float32)

    def means(self, x: np.ndarray) -> np.ndarray:
        xi = np.hstack([np.ones((len(x), 1)), np.asarray(x, np.float64)])
        return np.clip(xi @ self.weights.T, 0.0, 1.0)

    def rewards(self, x: np.ndarray, arms: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        mu = self.means(x)[np.arange(len(x)), arms]
        return (rng.random(len(x)) < mu).astype(np.float64)


@dataclass
class SimResult:
    regret: np.ndarray  # (T,) cumulative expected regret after each decision
    mean_reward: float  # realized
    arm_counts: np.ndarray  # (K,)

    @property
    def total_regret(self) -> float:
        return float(self.regret[-1]) if len(self.regret) else 0.0


def simulate(
    router: BanditRouter,
    env: Environment,
    *,
    rounds: int,
    batch: int,
    seed: int = 0,
    start: float | None = None,
    step_s: float = 1.0,
    shift: Environment | None = None,
    shift_at: int | None = None,
    progress: Any = None,
) -> SimResult:
    """Run ``rounds`` decide/feedback rounds of ``batch`` customers; optionally switch to the
    ``shift`` environment at round ``shift_at`` (non-stationarity)."""
    rng = np.random.default_rng(seed)
    start = (
        time.time() if start is None else start
    )  # simulated time from now: retention trims the past
    regret, rewards = [], []
    counts = np.zeros(env.n_arms, dtype=np.int64)
    task = progress.add_task("simulating", total=rounds) if progress is not None else None
    for t in range(rounds):  # rounds are time steps: each depends on what the last one learned
        e = shift if shift is not None and shift_at is not None and t >= shift_at else env
        x = e.contexts(batch, rng)
        ids = rng.integers(0, 1 << 40, batch)
        now = start + t * step_s
        dec = router.decide_sync(
            ids, x, eligible=np.ones(batch, bool), model_versions={"sim": "1"}, now=now
        )
        arm = dec.arm_index
        mu = e.means(x)
        regret.append(mu.max(axis=1) - mu[np.arange(batch), arm])
        r = e.rewards(x, arm, rng)
        rewards.append(r)
        counts += np.bincount(arm, minlength=env.n_arms)
        router.feedback_many(list(dec.decision_id), r, now=now + step_s / 2)
        if task is not None:
            progress.advance(task)
    router.flush()  # the whole simulated log is readable once this returns
    return SimResult(
        np.cumsum(np.concatenate(regret)), float(np.concatenate(rewards).mean()), counts
    )
