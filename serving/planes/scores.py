"""A /v1/score answer as columns, and the array steps that build it.

Every column is a numpy array in request order from the feature read to the JSON
encoder: string columns travel as codes (``codecs.columnar.Vocabulary``) or row ids
(``RowIds``), so no step makes a Python object per customer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from feature_store.batch import FeatureBatch
from serving.bandit.router import Decisions
from serving.bandit.state.records import REASONS
from serving.codecs.columnar import RowIds, Vocabulary
from serving.components.api import Model
from serving.components.explain import ExplanationBlock, Part, block
from serving.components.traffic_policy import row_token

Array = npt.NDArray[Any]
# by role, when a traffic policy split the rows: the version code per row (-1: not found),
# the versions, and the row token the decision log keeps (``components.traffic_policy.row_token``)
RowVersions = dict[str, tuple[Array, tuple[str, ...], str]]
Split = tuple[Array, tuple[str, ...], Any]  # a model's per-row codes, versions, its policy


@dataclass
class ScoreResult:
    """Columnar answer for N customers, request order (docs/api.md, POST /v1/score)."""

    customer_ids: Array
    found: Array
    churn_probability: Array  # float32, NaN where not found
    engagement_probability: Array
    feature_age_s: Array  # float64, NaN where not found
    features_defaulted: Array
    model_versions: dict[str, str]
    decisions: Decisions | None = None
    # by role: one part per version that scored; only when the request asks to explain
    explanations: dict[str, list[Part]] | None = None
    explain_k: int = 0
    pinned: dict[str, str] | None = None  # role -> version a version pin asked for
    row_versions: RowVersions | None = None

    def log_versions(self) -> dict[str, str]:
        """``model_versions`` for the decision log: with a split, each model's row token too,
        from which ``components.evidence`` recovers every row's version; with a pin, which
        roles were pinned (left out of the evidence)."""
        pinned = {f"pinned.{role}": v for role, v in (self.pinned or {}).items()}
        if not self.row_versions:
            return {**self.model_versions, **pinned} if pinned else self.model_versions
        return {
            **self.model_versions,
            **pinned,
            **{f"rollout.{role}": t for role, (_, _, t) in self.row_versions.items()},
        }

    def columns(self) -> dict[str, Any]:
        """The answer's columns for ``codecs.columnar``: numpy arrays, and string columns as
        codes (actions, reasons) or row ids (decision ids): no Python object per row."""
        n = len(self.customer_ids)
        d = self.decisions
        none = np.full(n, -1, dtype=np.int64)
        return {
            "customer_ids": self.customer_ids,
            "found": self.found,
            "churn_probability": self.churn_probability,
            "engagement_probability": self.engagement_probability,
            "action": Vocabulary(d.arm_index, d.arms) if d else Vocabulary(none, ()),
            "decision_id": RowIds(d.batch_id, d.has_decision)
            if d
            else RowIds("", np.zeros(n, bool)),
            "propensity": d.propensity if d else np.full(n, np.nan),
            "reason": Vocabulary(d.reason_code, REASONS) if d else Vocabulary(none, ()),
            "feature_age_s": self.feature_age_s,
            "features_defaulted": self.features_defaulted,
            "model_versions": self.model_versions,
            **({"pinned": self.pinned} if self.pinned else {}),
            **(
                {"explanations": {r: b.to_dict() for r, b in self.explanation_blocks().items()}}
                if self.explanations is not None
                else {}
            ),
            **(
                {
                    f"{role}_version": Vocabulary(codes, versions)
                    for role, (codes, versions, _) in self.row_versions.items()
                }
                if self.row_versions
                else {}
            ),
        }

    def explanation_blocks(self) -> dict[str, ExplanationBlock]:
        """One columnar block per model (``components.explain.block``), request order."""
        n = len(self.customer_ids)
        return {
            role: block(parts, n, self.explain_k)
            for role, parts in (self.explanations or {}).items()
        }

    def first_row(self) -> dict[str, Any]:
        """Row 0 as JSON scalars (NaN -> None): the one-customer answers."""
        d = self.decisions

        def number(column: Array) -> float | None:
            value = float(column[0])
            return None if np.isnan(value) else value

        return {
            "found": bool(self.found[0]),
            "churn_probability": number(self.churn_probability),
            "engagement_probability": number(self.engagement_probability),
            "action": d.action[0] if d else None,
            "decision_id": d.decision_id[0] if d else None,
            "propensity": number(d.propensity) if d else None,
            "reason": d.reason[0] if d else None,
            "feature_age_s": number(self.feature_age_s),
            "model_versions": self.model_versions,
        }


@dataclass(frozen=True)
class Explained:
    """A /v1/explain answer: each model's block (by its default version), request order."""

    customer_ids: Array
    found: Array
    blocks: dict[str, ExplanationBlock]  # by role

    def to_dict(self) -> dict[str, Any]:
        return {
            "customer_ids": self.customer_ids,
            "found": self.found,
            **{role: b.to_dict() for role, b in self.blocks.items()},
        }


def parse_ids(raw: list[int]) -> Array:
    """Validated ids (ScoreRequest bounds them) as the int64 array the services take."""
    return np.asarray(raw, dtype=np.int64)


async def score_model(
    model: Model, values: Array, names: tuple[str, ...], ids: Array, pinned: str | None
) -> tuple[str, Array, Split | None]:
    """A model's scores under its traffic policy, or all by the ``pinned`` version."""
    if pinned is None:
        return await model.score_rows(values, names, ids)
    version, scores = await model.score(values, names, pinned)
    return version, scores, None


def scatter(values: Array, rows: Array, n: int) -> Array:
    """Scores of the found rows at their request positions, NaN elsewhere (float32)."""
    if len(rows) == n:
        return values.astype(np.float32, copy=False)
    out = np.full(n, np.nan, dtype=np.float32)
    out[rows] = values
    return out


def row_versions(splits: dict[str, Split | None], rows: Array, n: int) -> RowVersions:
    """Per-row version codes in request order (-1 where the customer was not found), and
    the decision log's token of them (``components.traffic_policy.row_token``)."""
    out: RowVersions = {}
    for role, split in splits.items():
        if split is not None:
            codes, versions, _ = split
            full = np.full(n, -1, dtype=np.int64)
            full[rows] = codes
            out[role] = (full, versions, row_token(full, versions))
    return out


def defaulted(batch: FeatureBatch) -> Array:
    """Rows found but missing a view, which the models saw as defaults."""
    if batch.view_found is None:
        return np.zeros(len(batch), dtype=bool)
    found: Array = batch.found & ~batch.view_found.all(axis=1)
    return found
