"""Online evidence per model version, from the bandit's decision log joined with rewards.

Every decision batch records the versions that scored it; a batch a traffic policy split
records the policy's assignment token instead (``rollout.<model>``), from which each
row's version is recomputed (the same salted hash, one numpy call per batch token).

The value of a version is the mean reward of the bandit's policy decisions on the
customers it scored. The sticky hash split is a randomized experiment (a customer's
bucket does not depend on anything about the customer), so each version's mean is an
unbiased estimate of the reward the bandit would collect if that version scored
everyone, under the same logging policy and the same period. Holdout and contact-cap
rows are left out, as in ``serving.bandit.ope`` (they were forced, not chosen).
Intervals are normal ones; the difference candidate - default uses Welch's.
"""

from __future__ import annotations

from statistics import NormalDist
from typing import Any, Literal

import numpy as np

from serving.bandit.ope import LogRecords
from serving.bandit.state import Reason
from serving.components.rollout import versions_from_token


def row_versions(records: LogRecords, model: str) -> np.ndarray:
    """The version of ``model`` that scored each logged row (object array, None if unknown)."""
    out = np.full(len(records), None, dtype=object)
    if len(records) == 0:
        return out
    key = f"rollout.{model}"
    # model_versions holds one dict per batch, shared by its rows: group rows by dict identity
    ids = np.fromiter((id(m) for m in records.model_versions), np.int64, len(records))
    uniq, first, inverse = np.unique(ids, return_index=True, return_inverse=True)
    for k, start in enumerate(first.tolist()):  # one pass per batch, arrays inside
        rows = inverse == k
        mv = records.model_versions[start] or {}
        token, coded = mv.get(key), mv.get(key + ".rows")
        if coded:  # each row's version as logged (the log holds pseudonyms, not ids)
            out[rows] = versions_from_codes(coded)[np.flatnonzero(rows) - start]
        elif token:
            out[rows] = versions_from_token(token, records.customer_id[rows])
        else:
            out[rows] = mv.get(model)
    return out


def versions_from_codes(coded: str) -> np.ndarray:
    """``dataplane.row_codes`` read back: the version of each row (None: not scored)."""
    names, _, chars = coded.partition("|")
    table = np.array([None, *names.split(",")], dtype=object)
    return table[np.frombuffer(chars.encode("ascii"), np.uint8).astype(np.int64) - 48]


def _estimate(r: np.ndarray, z: float) -> dict[str, Any]:
    n = len(r)
    mean = float(r.mean()) if n else float("nan")
    se = float(r.std(ddof=1) / np.sqrt(n)) if n > 1 else float("nan")
    return {"n": n, "value": mean, "std_error": se, "low": mean - z * se, "high": mean + z * se}


def version_values(records: LogRecords, model: str, *, confidence: float = 0.95,
                   missing_reward: Literal["drop", "zero"] = "drop") -> dict[str, dict[str, Any]]:
    """Per version: rewarded policy decisions, mean reward and its interval."""
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    reward = records.reward if missing_reward == "drop" else np.nan_to_num(records.reward, nan=0.0)
    rows = (records.reason == Reason.POLICY) & (records.arm >= 0) & np.isfinite(reward)
    versions = row_versions(records, model)
    out = {}
    for version in sorted({v for v in versions[rows].tolist() if v is not None}, key=str):
        out[version] = _estimate(reward[rows & (versions == version)], z)
    return out


def compare(values: dict[str, dict[str, Any]], default: str, candidate: str, *,
            confidence: float = 0.95) -> dict[str, Any]:
    """Candidate against default: the difference with Welch's interval and a verdict:
    ``worse`` (the whole interval below 0), ``better`` (above 0), else ``inconclusive``
    (or ``insufficient`` with fewer than 2 rewarded rows on either side)."""
    d, c = values.get(default), values.get(candidate)
    base = {"default": default, "candidate": candidate, "confidence": confidence,
            "default_value": d, "candidate_value": c}
    if not d or not c or d["n"] < 2 or c["n"] < 2:
        return {**base, "difference": None, "verdict": "insufficient"}
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    diff = c["value"] - d["value"]
    se = float(np.sqrt(c["std_error"] ** 2 + d["std_error"] ** 2))
    low, high = diff - z * se, diff + z * se
    verdict = "worse" if high < 0 else "better" if low > 0 else "inconclusive"
    return {**base, "difference": {"value": diff, "std_error": se, "low": low, "high": high}, "verdict": verdict}
