"""Bandit policies as vectorized action-probability functions over shared statistics.

Every policy reads the same per-arm sufficient statistics (``Stats``): a weighted count,
a reward sum, and the ridge-regression moments of the context (with an intercept). So
the state is policy-agnostic: switching ``thompson`` to ``linucb`` keeps what was learned,
and OPE can score any candidate policy from the same state.

A policy returns the full (N, K) action distribution, already mixed with the epsilon
floor; the router samples the action from exactly that distribution, so the logged
propensity is the true probability of the logged action (Thompson sampling's argmax
probabilities are estimated by Monte Carlo and then *used as* the sampling distribution).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

POLICIES = ("thompson", "linucb", "lin_ts", "uniform", "greedy")
_MC_BLOCK = 2_000_000  # draws per Monte Carlo block for LinTS (bounds memory at ~16 MB)


@dataclass(frozen=True)
class Layout:
    """Column layout of the (K, m) statistics: [w, wr, b (p), A (p*p)], p = d + 1."""

    n_arms: int
    dim: int  # context features, without the intercept

    @property
    def p(self) -> int:
        return self.dim + 1

    @property
    def width(self) -> int:
        return 2 + self.p + self.p * self.p

    def zeros(self) -> np.ndarray:
        return np.zeros((self.n_arms, self.width), dtype=np.float64)


def with_intercept(context: np.ndarray) -> np.ndarray:
    """(N, d) -> (N, d+1) float64 with a leading 1; NaN (missing feature) counts as 0."""
    x = np.nan_to_num(np.asarray(context, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    return np.hstack([np.ones((x.shape[0], 1)), x])


def row_increments(layout: Layout, context: np.ndarray, reward: np.ndarray) -> np.ndarray:
    """(N, m) per-row statistic increments [1, r, r*x, x x^T] for rewards observed on rows."""
    x = with_intercept(context)
    r = np.asarray(reward, dtype=np.float64)
    outer = np.einsum("ni,nj->nij", x, x).reshape(len(x), layout.p * layout.p)
    return np.hstack([np.ones((len(x), 1)), r[:, None], r[:, None] * x, outer])


def aggregate(
    layout: Layout, arms: np.ndarray, rows: np.ndarray, weights: np.ndarray | None = None
) -> np.ndarray:
    """Sum per-row increments into (K, m) by arm (one scatter-add, no loop over rows)."""
    out = layout.zeros()
    w = rows if weights is None else rows * weights[:, None]
    np.add.at(out, np.asarray(arms, dtype=np.int64), w)
    return out


@dataclass(frozen=True)
class Posterior:
    """What the policies need, derived once per state version."""

    alpha: np.ndarray  # (K,) Beta posterior, prior Beta(1, 1)
    beta: np.ndarray
    theta: np.ndarray  # (K, p) ridge estimates
    a_inv: np.ndarray  # (K, p, p)
    count: np.ndarray  # (K,) weighted observations


def posterior(layout: Layout, stats: np.ndarray, ridge: float) -> Posterior:
    p = layout.p
    w, wr = stats[:, 0], stats[:, 1]
    b = stats[:, 2 : 2 + p]
    a = stats[:, 2 + p :].reshape(-1, p, p) + ridge * np.eye(p)
    a_inv = np.linalg.inv(a)
    theta = np.einsum("kij,kj->ki", a_inv, b)
    wr_c = np.clip(wr, 0.0, w)
    return Posterior(1.0 + wr_c, 1.0 + w - wr_c, theta, a_inv, w)


class Policy:
    """Action probabilities (N, K) for N contexts; ``kind`` one of POLICIES."""

    def __init__(
        self,
        kind: str,
        layout: Layout,
        *,
        epsilon: float,
        alpha: float = 1.0,
        ridge: float = 1.0,
        samples: int = 64,
    ) -> None:
        if kind not in POLICIES:
            raise ValueError(f"unknown policy {kind!r}; one of {POLICIES}")
        self.kind, self.layout = kind, layout
        self.epsilon, self.alpha, self.ridge, self.samples = epsilon, alpha, ridge, samples
        self._arm_probs: tuple[np.ndarray, np.ndarray] | None = None  # (stats it was drawn for, P)

    def probabilities(
        self, context: np.ndarray, stats: np.ndarray, rng: np.random.Generator
    ) -> np.ndarray:
        n, k = context.shape[0], self.layout.n_arms
        if n == 0:
            return np.zeros((0, k))
        if self.kind == "uniform":
            return np.full((n, k), 1.0 / k)
        if self.kind == "thompson":
            base = self._thompson_for(stats, rng)
            return base[None] if n == 1 else np.broadcast_to(base, (n, k))
        post = posterior(self.layout, stats, self.ridge)
        x = with_intercept(context)
        mean = x @ post.theta.T  # (N, K)
        if self.kind == "greedy":
            base = _one_hot_argmax(mean, rng)
        else:
            sd = np.sqrt(np.maximum(np.einsum("np,kpq,nq->nk", x, post.a_inv, x), 0.0))
            if self.kind == "linucb":
                base = _one_hot_argmax(mean + self.alpha * sd, rng)
            else:
                base = self._lin_ts(mean, self.alpha * sd, rng)
        return (1.0 - self.epsilon) * base + self.epsilon / k

    def _thompson_for(self, stats: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Context-free probabilities depend on the statistics alone: estimate them once per
        statistics snapshot (replicas swap in a new array on sync), not once per call. The
        action is still drawn from exactly the logged vector, so propensities stay exact."""
        cached = self._arm_probs
        if cached is None or cached[0] is not stats:
            base = self._thompson(posterior(self.layout, stats, self.ridge), rng)
            mixed = (1.0 - self.epsilon) * base + self.epsilon / self.layout.n_arms
            mixed.flags.writeable = False  # shared by every call until the next snapshot
            cached = self._arm_probs = (stats, mixed)
        return cached[1]

    def _thompson(self, post: Posterior, rng: np.random.Generator) -> np.ndarray:
        """P(arm k has the largest Beta draw), by Monte Carlo with ``samples`` draws."""
        s = 16 * self.samples
        draws = rng.beta(post.alpha, post.beta, size=(s, len(post.alpha)))
        return np.bincount(draws.argmax(axis=1), minlength=len(post.alpha)) / s

    def _lin_ts(self, mean: np.ndarray, sd: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """P(arm k wins) per row: the score x.theta_k is Gaussian, so draw scalars, not vectors."""
        n, k = mean.shape
        out = np.empty((n, k))
        block = max(1, _MC_BLOCK // (self.samples * k))
        m_all, s_all = mean.T.astype(np.float32), sd.T.astype(np.float32)  # (K, N)
        for lo in range(0, n, block):  # blocks of rows bound memory; not a per-row loop
            m, s = m_all[:, None, lo : lo + block], s_all[:, None, lo : lo + block]
            draws = rng.standard_normal((k, self.samples, m.shape[2]), dtype=np.float32)
            draws *= s
            draws += m
            best, win = draws[0].copy(), np.zeros(draws.shape[1:], dtype=np.int16)
            for a in range(1, k):  # K passes over (S, block): cheaper than argmax on a short axis
                better = draws[a] > best
                np.maximum(best, draws[a], out=best)
                win[better] = a
            for a in range(k):
                out[lo : lo + block, a] = (win == a).sum(axis=0)
        return out / self.samples


def _one_hot_argmax(score: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One-hot of the row-wise argmax, ties broken at random."""
    jitter = rng.random(score.shape) * 1e-9 * (1.0 + np.abs(score).max(initial=0.0))
    idx = (score + jitter).argmax(axis=1)
    out = np.zeros_like(score, dtype=np.float64)
    out[np.arange(len(score)), idx] = 1.0
    return out


def sample_actions(probs: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One categorical draw per row (inverse CDF); returns (arm index, its propensity)."""
    n = probs.shape[0]
    if n == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    cdf = np.cumsum(probs, axis=1)
    u = rng.random(n) * cdf[:, -1]
    arm = np.minimum((cdf < u[:, None]).sum(axis=1), probs.shape[1] - 1)
    return arm.astype(np.int64), probs[np.arange(n), arm]


def sample_one(probs: np.ndarray, rng: np.random.Generator) -> tuple[int, float]:
    """``sample_actions`` for one row, in Python scalars: the same draw from the same stream
    (one uniform; cumulative sums in the same order) for a fraction of numpy's fixed cost
    per call, which made up most of a single-customer decision."""
    p = probs.tolist()
    cdf = list(itertools.accumulate(p))
    u = rng.random() * cdf[-1]
    arm = min(sum(c < u for c in cdf), len(p) - 1)
    return arm, p[arm]
