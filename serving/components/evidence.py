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
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

import numpy as np

from serving.components.traffic_policy import versions_from_token

PROMOTABLE = ("better", "non_inferior")


@dataclass
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

    def to_dict(self) -> dict[str, Any]:
        se = math.sqrt(self.var / self.n) if self.n > 1 else None
        return {"n": self.n, "value": self.mean if self.n else None, "std_error": se}


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
) -> dict[str, Any]:
    """Candidate against default: the difference, its confidence-sequence bounds and a
    verdict: ``better`` (lower bound > 0), ``non_inferior`` (lower bound > -margin),
    ``inferior`` (upper bound < -margin), else ``inconclusive``; ``insufficient`` below
    ``min_decisions`` resolved decisions on either arm or with no variance yet. Only
    ``better`` and ``non_inferior`` promote."""
    d, c = stats.get(default, Stats()), stats.get(candidate, Stats())
    alpha = 1 - confidence
    out: dict[str, Any] = {
        "default": default,
        "candidate": candidate,
        "confidence": confidence,
        "margin": margin,
        "method": "normal-mixture confidence sequence (mixture SPRT), always valid",
        "min_decisions": min_decisions,
        "default_value": d.to_dict(),
        "candidate_value": c.to_dict(),
        "difference": None,
        "needed_per_arm": None,
        "more_per_arm": None,
    }
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
        return {
            **out,
            "verdict": "insufficient",
            "needed_per_arm": needed,
            "more_per_arm": max(needed - min(c.n, d.n), 0),
        }
    variance = var_c / c.n + var_d / d.n
    diff = c.mean - d.mean
    width = half_width(variance, alpha, margin)
    low, high = diff - width, diff + width
    verdict = (
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
    return {
        **out,
        "verdict": verdict,
        "needed_per_arm": at_estimate,
        "more_per_arm": 0 if verdict in PROMOTABLE else more,
        "difference": {"value": diff, "std_error": math.sqrt(variance), "low": low, "high": high},
    }


def refusal_message(
    name: str,
    target: str | None,
    default: str | None,
    verdict: dict[str, Any],
    evidence: dict[str, Any],
) -> str:
    """A refused promotion's message: the verdict, the estimates, what it takes to pass."""
    if not verdict:
        why = evidence.get("reason") or "name the candidate to promote"
        return f"no evidence for {name} v{target}: {why}; force overrides (audited)"
    d, c, diff = verdict["default_value"], verdict["candidate_value"], verdict.get("difference")
    text = (
        f"{name} v{target} is not shown non-inferior to the default v{default} (verdict "
        f"{verdict['verdict']}, margin {verdict['margin']:g}): n={c['n']} vs n={d['n']} resolved decisions"
    )
    if diff:
        text += (
            f", reward {c['value']:.4f} vs {d['value']:.4f}, difference {diff['value']:.4f} "
            f"[{diff['low']:.4f}, {diff['high']:.4f}] at {verdict['confidence']:.0%} (always valid)"
        )
    if verdict.get("more_per_arm") is not None:
        text += f"; about {verdict['more_per_arm']} more decisions per arm needed"
    return text + "; force overrides (audited)"
