"""Online evidence per model version, and the promotion gate built on it.

Every decision batch records the versions that scored it; a batch a traffic policy split
records each row's version (``rollout.<model>``: ``components.traffic_policy.row_token``), and a
batch a version pin served says so (``pinned.<model>``) and is left out.

The value of a version is the mean reward of the bandit's policy decisions on the
customers it scored. The bucket split is a randomized experiment (a customer's bucket
does not depend on anything about the customer), so each version's mean estimates the
reward the bandit would collect if that version scored everyone, under the same logging
policy and period. Holdout and contact-cap rows are left out (they were forced, not
chosen). A decision counts once it is resolved: rewarded, or its reward window
(``bandit.reward_window_s``) closed without a reward, which counts as reward 0 (a CRM
that reports only conversions is handled). Decisions with an open window and no reward
yet are not counted.

The gate compares candidate - default with an always-valid confidence sequence: the
normal-mixture (Robbins) boundary of the mixture sequential probability ratio test
(Johari, Koomen, Pekelis, Walsh, "Always valid inference", 2017; Howard, Ramdas,
McAuliffe, Sekhon, "Time-uniform, nonparametric, nonasymptotic confidence sequences",
2021) with plug-in variances, valid asymptotically however often it is looked at
(Waudby-Smith et al., "Time-uniform central limit theory", 2023). The mixture's scale is
the margin: the sequence is tightest for differences of that size.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from statistics import NormalDist
from typing import Any

import numpy as np

from serving.components.traffic_policy import versions_from_token

PROMOTABLE = ("better", "non_inferior")


@dataclass(frozen=True)
class Estimate:
    """One version's value: resolved decisions, mean reward, its standard error."""

    n: int
    value: float | None
    std_error: float | None


@dataclass(frozen=True)
class Stats:
    """Sufficient statistics of one version's resolved decisions."""

    n: int = 0
    total: float = 0.0
    squares: float = 0.0

    @property
    def mean(self) -> float:
        return self.total / self.n if self.n else float("nan")

    @property
    def var(self) -> float:
        """Unbiased sample variance (0 below two decisions)."""
        if self.n < 2:
            return 0.0
        return max(self.squares - self.total * self.total / self.n, 0.0) / (self.n - 1)

    def estimate(self) -> Estimate:
        se = math.sqrt(self.var / self.n) if self.n > 1 else None
        return Estimate(self.n, self.mean if self.n else None, se)


@dataclass(frozen=True)
class LogStats:
    """Each version's resolved decisions from the decision log, or why the log could not
    be read (evidence is advice: an outage is said, not raised)."""

    values: dict[str, Stats] = field(default_factory=dict)
    error: str | None = None


@dataclass(frozen=True)
class Difference:
    """Candidate - default: the estimate, its standard error and the always-valid bounds."""

    value: float
    std_error: float
    low: float
    high: float


@dataclass(frozen=True)
class Comparison:
    """A candidate against the default: the gate's verdict and what it rests on."""

    default: str
    candidate: str
    confidence: float
    margin: float
    method: str
    min_decisions: int
    default_value: Estimate
    candidate_value: Estimate
    difference: Difference | None
    needed_per_arm: int | None
    more_per_arm: int | None
    verdict: str

    @property
    def promotable(self) -> bool:
        return self.verdict in PROMOTABLE

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Evidence:
    """Each version's value since the rollout started and each candidate's comparison; or,
    with ``available`` False, the reason there is none (no decision log, unreadable)."""

    available: bool
    reason: str | None = None
    since: float | None = None
    confidence: float | None = None
    margin: float | None = None
    values: dict[str, Estimate] = field(default_factory=dict)
    comparisons: dict[str, Comparison] = field(default_factory=dict)

    @classmethod
    def unavailable(cls, reason: str) -> "Evidence":
        return cls(False, reason)

    def to_json(self) -> dict[str, Any]:
        """The wire shape of docs/api.md: the reason alone when unavailable."""
        if not self.available:
            return {"available": False, "reason": self.reason}
        return {
            "available": True,
            "since": self.since,
            "confidence": self.confidence,
            "margin": self.margin,
            "values": {v: asdict(e) for v, e in self.values.items()},
            "comparisons": {c: comp.to_json() for c, comp in self.comparisons.items()},
        }


def batch_versions(model_versions: dict[str, str], model: str, n: int) -> np.ndarray | None:
    """The version of ``model`` that scored each of a logged batch's ``n`` rows (object
    array, None unknown); None for a batch a version pin served (kept out of evidence)."""
    if model_versions.get(f"pinned.{model}"):
        return None
    token = model_versions.get(f"rollout.{model}")
    if token:
        return versions_from_token(token, n)
    return np.full(n, model_versions.get(model), dtype=object)


def half_width(variance: float, alpha: float, scale: float) -> float:
    """Half-width of the two-sided normal-mixture confidence sequence for a difference of
    means whose estimator has ``variance``; mixture N(0, scale**2)."""
    if variance <= 0:
        return 0.0
    tau2 = scale * scale
    return math.sqrt(
        variance
        * (variance + tau2)
        / tau2
        * (2 * math.log(1 / alpha) + math.log((variance + tau2) / variance))
    )


def needed_per_arm(
    var_c: float, var_d: float, target: float, alpha: float, scale: float, z: float = 0.0
) -> int | None:
    """The fewest decisions per arm at which the bound's half-width (plus ``z`` standard
    errors) is within ``target``; None when no n is (``target`` <= 0, or no variance)."""
    if target <= 0 or var_c + var_d <= 0:
        return None

    def fits(n: int) -> bool:
        v = (var_c + var_d) / n
        return half_width(v, alpha, scale) + z * math.sqrt(v) <= target

    lo, hi = 2, 2
    while not fits(hi):
        hi *= 2
        if hi > 10**13:
            return None
    while lo < hi:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if fits(mid) else (mid + 1, hi)
    return lo


def promotes_equal_at(variance: float, *, confidence: float, margin: float) -> int | None:
    """Decisions per arm at which a candidate as good as the default passes the gate with
    probability at least 1 - alpha/2 (normal approximation): the n stated in the answers."""
    alpha = 1 - confidence
    return needed_per_arm(
        variance, variance, margin, alpha, margin, NormalDist().inv_cdf(1 - alpha / 2)
    )


def compare(
    stats: dict[str, Stats],
    default: str,
    candidate: str,
    *,
    confidence: float = 0.95,
    margin: float = 0.01,
    min_decisions: int = 200,
) -> Comparison:
    """Candidate against default: the difference, its confidence-sequence bounds and a
    verdict: ``better`` (lower bound > 0), ``non_inferior`` (lower bound > -margin),
    ``inferior`` (upper bound < -margin), else ``inconclusive``; ``insufficient`` below
    ``min_decisions`` resolved decisions on either arm or with no variance yet. Only
    ``better`` and ``non_inferior`` promote."""
    d, c = stats.get(default, Stats()), stats.get(candidate, Stats())
    alpha = 1 - confidence

    def verdict(
        name: str, needed: int | None, more: int | None, difference: Difference | None = None
    ) -> Comparison:
        return Comparison(
            default,
            candidate,
            confidence,
            margin,
            "normal-mixture confidence sequence (mixture SPRT), always valid",
            min_decisions,
            d.estimate(),
            c.estimate(),
            difference,
            needed,
            more,
            name,
        )

    var_c, var_d = c.var, d.var
    if var_c + var_d <= 0 and c.n >= 2 and d.n >= 2:
        var_c = var_d = max(c.mean * (1 - c.mean), d.mean * (1 - d.mean), 0.0)  # all equal so far
    if c.n < min_decisions or d.n < min_decisions or var_c + var_d <= 0:
        guess = var_c + var_d if var_c + var_d > 0 else None
        needed = (
            max(min_decisions, needed_per_arm(guess, 0.0, margin, alpha, margin) or 0)
            if guess
            else min_decisions
        )
        return verdict("insufficient", needed, max(needed - min(c.n, d.n), 0))
    variance = var_c / c.n + var_d / d.n
    diff = c.mean - d.mean
    width = half_width(variance, alpha, margin)
    low, high = diff - width, diff + width
    name = (
        "better"
        if low > 0
        else "non_inferior"
        if low > -margin
        else "inferior"
        if high < -margin
        else "inconclusive"
    )
    at_estimate = needed_per_arm(var_c, var_d, margin + min(diff, 0.0), alpha, margin)
    more = None if at_estimate is None else max(at_estimate - min(c.n, d.n), 0)
    return verdict(
        name,
        at_estimate,
        0 if name in PROMOTABLE else more,
        Difference(diff, math.sqrt(variance), low, high),
    )


def refusal_message(
    name: str,
    target: str | None,
    default: str | None,
    verdict: Comparison | None,
    evidence: Evidence,
) -> str:
    """A refused promotion's message: the verdict, the estimates, what it takes to pass."""
    if verdict is None:
        why = evidence.reason or "name the candidate to promote"
        return f"no evidence for {name} v{target}: {why}; force overrides (audited)"
    d, c, diff = verdict.default_value, verdict.candidate_value, verdict.difference
    text = (
        f"{name} v{target} is not shown non-inferior to the default v{default} (verdict "
        f"{verdict.verdict}, margin {verdict.margin:g}): n={c.n} vs n={d.n} resolved decisions"
    )
    if diff:
        text += (
            f", reward {c.value:.4f} vs {d.value:.4f}, difference {diff.value:.4f} "
            f"[{diff.low:.4f}, {diff.high:.4f}] at {verdict.confidence:.0%} (always valid)"
        )
    if verdict.more_per_arm is not None:
        text += f"; about {verdict.more_per_arm} more decisions per arm needed"
    return text + "; force overrides (audited)"
