"""Off-policy evaluation of a candidate policy on the decision log (IPS, SNIPS, doubly robust).

The log holds, per decision, the context, the logged arm and its propensity; rewards join
by decision id. Only rows the policy decided (reason ``policy``) are evaluated: holdout and
capped rows were forced, not sampled, so they say nothing about a policy's choices.
Intervals are normal-approximation ones (delta method for SNIPS); the effective sample
size says how much of the log the candidate actually agrees with.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from statistics import NormalDist
from typing import Any, Literal

import numpy as np

from serving.bandit.policies import Layout, Policy, aggregate, row_increments, with_intercept
from serving.bandit.state import REASONS, BatchRecord, Reason, StateStore, open_store
from serving.bandit.state.base import discount_weights
from serving.errors import InvalidRequest

Candidate = str | np.ndarray | Callable[[np.ndarray], np.ndarray]


@dataclass
class LogRecords:
    """The decision log as columns, one row per decision, rewards joined (NaN: none yet)."""

    decision_id: np.ndarray  # object
    t: np.ndarray
    customer_id: np.ndarray
    context: np.ndarray  # (n, d) float32
    arm: np.ndarray  # (n,) int64, -1: no decision
    propensity: np.ndarray
    reward: np.ndarray
    reason: np.ndarray  # uint8 index into REASONS
    policy_version: np.ndarray  # object
    model_versions: np.ndarray  # object: dict per row (shared per batch)
    arms: tuple[str, ...]
    context_names: tuple[str, ...]

    def __len__(self) -> int:
        return int(len(self.arm))

    def select(self, mask: np.ndarray) -> "LogRecords":
        cols = {k: v[mask] if isinstance(v, np.ndarray) else v for k, v in self.__dict__.items()}
        return LogRecords(**cols)


@dataclass(frozen=True)
class Estimate:
    value: float
    std_error: float
    low: float
    high: float


@dataclass(frozen=True)
class OPEReport:
    candidate: str
    n: int  # rewarded policy decisions evaluated
    effective_sample_size: float
    confidence: float
    logging: Estimate  # the logging policy's own value (mean reward on the same rows)
    ips: Estimate
    snips: Estimate
    dr: Estimate

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def records_from_batches(
    batches: list[BatchRecord], rewards: dict[tuple[str, int], float]
) -> LogRecords:
    """Concatenate per-batch records (one loop over batches, arrays inside)."""
    if not batches:
        return _empty((), ())
    last = batches[-1]
    same = [b for b in batches if b.arms == last.arms and b.context_names == last.context_names]
    rid = np.concatenate(
        [np.strings.add(b.batch_id + "-", np.arange(b.n).astype(np.str_)) for b in same]
    )
    reward = np.fromiter(
        (rewards.get((k[:16], int(k[17:])), np.nan) for k in rid.tolist()), float, len(rid)
    )
    rep = lambda f: np.concatenate([np.full(b.n, f(b), dtype=object) for b in same])  # noqa: E731
    return LogRecords(
        rid.astype(object),
        np.concatenate([np.full(b.n, b.t) for b in same]),
        np.concatenate([b.customer_ids for b in same]),
        np.concatenate([b.context for b in same]),
        np.concatenate([b.arm_index for b in same]).astype(np.int64),
        np.concatenate([b.propensity for b in same]),
        reward,
        np.concatenate([b.reason for b in same]),
        rep(lambda b: b.policy_version),
        rep(lambda b: b.model_versions),
        last.arms,
        last.context_names,
    )


def _empty(arms: tuple[str, ...], names: tuple[str, ...]) -> LogRecords:
    z = np.zeros(0)
    return LogRecords(
        z.astype(object),
        z,
        z.astype(np.int64),
        np.zeros((0, len(names)), np.float32),
        z.astype(np.int64),
        z,
        z,
        z.astype(np.uint8),
        z.astype(object),
        z.astype(object),
        arms,
        names,
    )


def load_log(
    settings: Any, *, since: float | None = None, store: StateStore | None = None
) -> LogRecords:
    """The durable decision log joined with rewards; ``settings``: Settings or BanditSettings."""
    bandit = getattr(settings, "bandit", settings)
    own = store is None
    store = open_store(bandit) if store is None else store
    try:
        batches, rewards = store.read_log(since)
    finally:
        if own:
            store.close()
    return records_from_batches(batches, rewards)


def evaluate(
    records: LogRecords,
    candidate: Candidate,
    *,
    confidence: float = 0.95,
    missing_reward: Literal["drop", "zero"] = "drop",
    name: str | None = None,
    seed: int = 0,
) -> OPEReport:
    """IPS, SNIPS and DR estimates of ``candidate``'s value on the rewarded policy rows.

    candidate: an (n, K) probability matrix over ``records`` rows, a callable
    context (n, d) -> (n, K), or a name understood by ``candidate_policy`` (no state).
    ``missing_reward="zero"`` counts decisions with no reward as reward 0 (conversions).
    """
    label = name or (candidate if isinstance(candidate, str) else "custom")
    if len(records) == 0 or not records.arms:
        nan = Estimate(np.nan, np.nan, np.nan, np.nan)
        return OPEReport(label, 0, 0.0, confidence, nan, nan, nan, nan)
    probs_all = _candidate_probs(records, candidate)
    reward = records.reward if missing_reward == "drop" else np.nan_to_num(records.reward, nan=0.0)
    rows = (
        (records.reason == Reason.POLICY)
        & (records.arm >= 0)
        & (records.propensity > 0)
        & np.isfinite(reward)
    )
    recs, pi, r = records.select(rows), probs_all[rows], reward[rows]
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    n = len(recs)
    if n == 0:
        nan = Estimate(np.nan, np.nan, np.nan, np.nan)
        return OPEReport(label, 0, 0.0, confidence, nan, nan, nan, nan)
    idx = np.arange(n)
    w = pi[idx, recs.arm] / recs.propensity
    q = cross_fit_rewards(recs.context, recs.arm, r, len(recs.arms), seed=seed)
    dr_terms = (pi * q).sum(axis=1) + w * (r - q[idx, recs.arm])
    snips = float((w * r).sum() / w.sum()) if w.sum() > 0 else np.nan
    snips_se = float(np.sqrt(((w * (r - snips)) ** 2).sum()) / w.sum()) if w.sum() > 0 else np.nan
    ess = float(w.sum() ** 2 / (w**2).sum()) if (w**2).sum() > 0 else 0.0
    return OPEReport(
        label,
        n,
        ess,
        confidence,
        _mean(r, z),
        _mean(w * r, z),
        _est(snips, snips_se, z),
        _mean(dr_terms, z),
    )


def uplift(
    records: LogRecords,
    *,
    confidence: float = 0.95,
    missing_reward: Literal["drop", "zero"] = "drop",
) -> Estimate:
    """Mean reward of treated customers minus the holdout's (Welch interval): what the
    router adds over never contacting, measured on the stable per-customer holdout."""
    reward = records.reward if missing_reward == "drop" else np.nan_to_num(records.reward, nan=0.0)
    seen = np.isfinite(reward) & (records.arm >= 0)
    treated, held = (
        reward[seen & (records.reason == Reason.POLICY)],
        reward[seen & (records.reason == Reason.HOLDOUT)],
    )
    if len(treated) < 2 or len(held) < 2:
        return Estimate(np.nan, np.nan, np.nan, np.nan)
    se = float(np.sqrt(treated.var(ddof=1) / len(treated) + held.var(ddof=1) / len(held)))
    return _est(float(treated.mean() - held.mean()), se, NormalDist().inv_cdf(0.5 + confidence / 2))


def _mean(x: np.ndarray, z: float) -> Estimate:
    se = float(x.std(ddof=1) / np.sqrt(len(x))) if len(x) > 1 else np.nan
    return _est(float(x.mean()), se, z)


def _est(v: float, se: float, z: float) -> Estimate:
    return Estimate(v, se, v - z * se, v + z * se)


def cross_fit_rewards(
    context: np.ndarray,
    arm: np.ndarray,
    reward: np.ndarray,
    n_arms: int,
    *,
    folds: int = 2,
    ridge: float = 1.0,
    seed: int = 0,
) -> np.ndarray:
    """(n, K) reward predictions by per-arm ridge regression, each row predicted by a model
    fitted on the other folds, so DR's correction term is not fitted to its own noise."""
    x = with_intercept(context)
    fold = np.random.default_rng(seed).integers(0, folds, len(x))
    out = np.zeros((len(x), n_arms))
    eye = ridge * np.eye(x.shape[1])
    eye[0, 0] = 1e-6  # leave the intercept (almost) unpenalized
    for f in range(folds):  # loops over folds and arms, never over rows
        test, train = fold == f, fold != f
        for k in range(n_arms):
            m = train & (arm == k)
            theta = (
                np.linalg.solve(x[m].T @ x[m] + eye, x[m].T @ reward[m])
                if m.any()
                else np.zeros(x.shape[1])
            )
            out[test, k] = x[test] @ theta
    return out


def _candidate_probs(records: LogRecords, candidate: Candidate) -> np.ndarray:
    k = len(records.arms)
    if isinstance(candidate, str):
        candidate = candidate_policy(candidate, records.arms)
    probs = (
        candidate(records.context)
        if callable(candidate)
        else np.asarray(candidate, dtype=np.float64)
    )
    if probs.shape != (len(records), k):
        raise InvalidRequest(
            f"candidate probabilities must be (n={len(records)}, K={k}), got {probs.shape}",
            field="candidate",
        )
    return probs


def candidate_policy(
    name: str,
    arms: tuple[str, ...],
    *,
    stats: np.ndarray | None = None,
    settings: Any = None,
    seed: int = 0,
) -> Callable[[np.ndarray], np.ndarray]:
    """A named candidate: ``uniform``, ``arm:<name>`` (always that arm), or a learning policy
    (``thompson``, ``linucb``, ``lin_ts``, ``greedy``) frozen at ``stats``."""
    k = len(arms)
    if name == "uniform":
        return lambda x: np.full((len(x), k), 1.0 / k)
    if name.startswith("arm:"):
        arm = name[4:]
        if arm not in arms:
            raise InvalidRequest(f"unknown arm {arm!r}; arms: {list(arms)}", field="candidate")
        onehot = np.eye(k)[arms.index(arm)]
        return lambda x: np.broadcast_to(onehot, (len(x), k)).copy()
    if stats is None or settings is None:
        raise InvalidRequest(
            f"candidate {name!r} needs learned statistics (use run_ope)", field="candidate"
        )
    rng = np.random.default_rng(seed)
    try:
        policy = Policy(
            name,
            Layout(k, _dim(stats.shape[1])),
            epsilon=settings.epsilon,
            alpha=settings.alpha,
            ridge=settings.ridge,
            samples=max(settings.ts_samples, 256),
        )
    except ValueError as exc:
        raise InvalidRequest(str(exc), field="candidate") from None
    return lambda x: policy.probabilities(x, stats, rng)


def _dim(width: int) -> int:
    """Context width d from the stats width m = 2 + p + p^2, p = d + 1."""
    p = int(round((-1 + np.sqrt(1 + 4 * (width - 2))) / 2))
    return p - 1


def fit_stats(records: LogRecords, *, discount: float = 1.0) -> np.ndarray:
    """Policy statistics learned from the rewarded policy rows of a log (offline training)."""
    layout = Layout(len(records.arms), len(records.context_names))
    rows = (records.reason == Reason.POLICY) & (records.arm >= 0) & np.isfinite(records.reward)
    r = records.select(rows)
    w = discount_weights(len(r), discount) if discount < 1 else None
    return aggregate(layout, r.arm, row_increments(layout, r.context, r.reward), w)


def run_ope(
    settings: Any,
    candidate: str,
    console: Any = None,
    *,
    train_share: float = 0.5,
    confidence: float = 0.95,
    missing_reward: Literal["drop", "zero"] = "drop",
    epsilon: float | None = None,
) -> OPEReport:
    """``reengage ope``: evaluate ``candidate`` against the logging policy and print a table.

    A learning candidate (thompson / linucb / lin_ts / greedy) is trained on the first
    ``train_share`` of the log (by time) and evaluated on the rest, so it is never scored on
    rewards it learned from; ``uniform`` and ``arm:<name>`` use the whole log. ``epsilon``
    overrides the candidate's exploration floor (default: the configured one).
    """
    bandit = getattr(settings, "bandit", settings)
    if epsilon is not None:
        bandit = bandit.model_copy(update={"epsilon": epsilon})
    records = load_log(settings)
    order = np.argsort(records.t, kind="stable")
    records = records.select(order)
    if candidate == "uniform" or candidate.startswith("arm:") or len(records) == 0:
        report = evaluate(records, candidate, confidence=confidence, missing_reward=missing_reward)
    else:
        cut = int(len(records) * train_share)
        train, test = (
            records.select(np.arange(len(records)) < cut),
            records.select(np.arange(len(records)) >= cut),
        )
        policy = candidate_policy(candidate, records.arms, stats=fit_stats(train), settings=bandit)
        report = evaluate(
            test, policy, confidence=confidence, missing_reward=missing_reward, name=candidate
        )
    print_report(report, console)
    lift = uplift(records, confidence=confidence, missing_reward=missing_reward)
    if np.isfinite(lift.value) and console is not None:
        console.print(
            f"uplift over the holdout (policy - holdout mean reward): {lift.value:.4f} "
            f"\\[{lift.low:.4f}, {lift.high:.4f}]"
        )
    return report


def print_report(report: OPEReport, console: Any = None) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = console or Console()
    pct = int(round(report.confidence * 100))
    table = Table(
        title=f"Off-policy evaluation: {report.candidate} "
        f"(n={report.n}, effective n={report.effective_sample_size:.0f})"
    )
    table.add_column("estimator")
    table.add_column("value", justify="right")
    table.add_column("std error", justify="right")
    table.add_column(f"{pct}% interval", justify="right")
    for label, e in (
        ("logging policy (on-policy mean)", report.logging),
        ("IPS", report.ips),
        ("SNIPS", report.snips),
        ("doubly robust", report.dr),
    ):
        interval = escape(f"[{e.low:.4f}, {e.high:.4f}]") if np.isfinite(e.low) else "n/a"
        table.add_row(label, f"{e.value:.4f}", f"{e.std_error:.4f}", interval)
    console.print(table)
    if report.n == 0:
        console.print("[yellow]no rewarded policy decisions in the log[/yellow]")


__all__ = [
    "LogRecords",
    "Estimate",
    "OPEReport",
    "evaluate",
    "load_log",
    "run_ope",
    "candidate_policy",
    "uplift",
    "cross_fit_rewards",
    "fit_stats",
    "records_from_batches",
    "REASONS",
]
