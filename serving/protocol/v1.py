"""Wire types of our JSON API (docs/api.md).

Bounded and strict, so validation names the offending field. Responses are columnar:
one array per field, in request order, as the scoring path produces them. The routes
write answers straight from numpy with orjson; these types are what the OpenAPI schema
states and what the tests check every answer against (``extra="forbid"``, and every
field that is always sent has no default, so it is required in the schema).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt

MAX_IDS = 10_000
MAX_TOP_K = 1_000  # above the number of features means "all of them"

CustomerId = Annotated[StrictInt, Field(ge=0, le=2**63 - 1)]
TopK = Annotated[StrictInt, Field(ge=1, le=MAX_TOP_K)]
# why a row got its action (serving.bandit.state.REASONS); "forced" on /v1/reengage only
Reason = Literal["policy", "holdout", "contact_cap", "not_found", "opted_out"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())


class ScoreRequest(_Strict):
    customer_ids: list[CustomerId] = Field(min_length=1, max_length=MAX_IDS)
    explain: TopK | None = Field(
        None, description="add each model's top-k contributions (`explanations`)"
    )


class ExplainRequest(_Strict):
    customer_ids: list[CustomerId] = Field(min_length=1, max_length=MAX_IDS)
    top_k: TopK = Field(
        5, description="contributions per customer; at or above the number of features, all"
    )


class Contribution(_Strict):
    feature: str
    value: float | None = Field(
        description="the customer's value of the feature (the model's input)"
    )
    contribution: float = Field(description="its share of the log-odds")


class ExplanationBlock(_Strict):
    """One model's explanation, columnar: base_value + all contributions = log-odds."""

    version: str = Field(description="the model version explained (the one that scored)")
    output: Literal["log_odds"]
    method: str = Field(description="tree_shap (churn) or deeplift_rescale (engagement)")
    base_value: list[float | None]
    contributions: list[list[Contribution] | None] = Field(
        description="sorted by |contribution|, top-k"
    )


class Explanations(_Strict):
    churn: ExplanationBlock
    engagement: ExplanationBlock


class ExplainResponse(_Strict):
    customer_ids: list[int]
    found: list[bool]
    churn: ExplanationBlock
    engagement: ExplanationBlock


class ModelVersions(_Strict):
    """The version of each model that scored the request; comma-separated versions when a
    rollout split the rows (then ``churn_version`` / ``engagement_version`` say which row)."""

    churn: str
    engagement: str


class ScoreResponse(_Strict):
    """``ScoreResult.columns()``; every array in request order. Without the bandit
    (``bandit.enabled=false``) ``action``, ``decision_id``, ``propensity`` and ``reason``
    are all null."""

    customer_ids: list[int]
    found: list[bool]
    churn_probability: list[float | None]
    engagement_probability: list[float | None]
    action: list[str | None]
    decision_id: list[str | None]
    propensity: list[float | None]
    reason: list[Reason | None] = Field(
        description="why this action: policy, holdout, contact_cap, not_found, opted_out"
    )
    feature_age_s: list[float | None] = Field(
        description="age of each customer's oldest feature view"
    )
    features_defaulted: list[bool] = Field(
        description="a stale or missing view was scored with defaults"
    )
    model_versions: ModelVersions
    explanations: Explanations | None = Field(None, description="only with `explain`")
    pinned: dict[str, str] | None = Field(
        None,
        description="only when an X-Reengage-Version header pinned a version (admin tokens): "
        "role -> version",
    )
    churn_version: list[str | None] | None = Field(
        None,
        description="only when a rollout split the rows: the churn version of each row "
        "(model_versions.churn then lists the versions used, comma-separated)",
    )
    engagement_version: list[str | None] | None = Field(
        None, description="only when a rollout split the rows: the engagement version of each row"
    )


class ReengageRequest(_Strict):
    customer_id: CustomerId
    max_tokens: int | None = Field(None, ge=1, le=2048)
    temperature: float | None = Field(None, ge=0, le=2)
    action: str | None = Field(None, description="force an action instead of the bandit's choice")
    explain: TopK | None = Field(
        None, description="give the writer up to this many churn reasons (`reasons`)"
    )
    adapter: str | None = Field(
        None,
        min_length=1,
        max_length=64,
        description="the brand voice: a LoRA adapter /v1/models lists; null: the base model",
    )


class ReasonGiven(_Strict):
    """A churn reason handed to the email writer (``serving.llm.reasons``)."""

    model: str
    feature: str
    value: float | None
    contribution: float = Field(description="the feature's churn log-odds contribution (positive)")
    phrase: str = Field(description="what the writer was told, e.g. 'orders fell'")


class LLMInfo(_Strict):
    backend: str
    model: str
    fallback: bool = Field(
        description="the model's draft failed a guardrail: the safe template was sent"
    )
    fallback_reason: str | None
    written: bool = Field(description="false for actions that send no email (no_contact)")
    completion_tokens: int
    adapter: str | None = Field(
        description="the LoRA adapter (brand voice) that wrote it; null: the base model"
    )


class ReengageResponse(_Strict):
    """One customer's row of ``/v1/score`` as scalars, plus the email. An unknown
    customer is a 404, so ``found`` is always true and both scores are numbers."""

    customer_id: int
    found: bool
    churn_probability: float
    engagement_probability: float
    action: str | None = Field(
        description="null only without the bandit (then no_contact is written)"
    )
    decision_id: str | None = Field(
        description="null without the bandit or when the action was forced"
    )
    propensity: float | None
    reason: Reason | Literal["forced"] | None
    feature_age_s: float | None
    model_versions: ModelVersions
    subject: str | None = Field(description="null when no email is sent (no_contact)")
    body: str | None
    llm: LLMInfo
    reasons: list[ReasonGiven] | None = Field(
        None, description="only with `explain`: the reasons the writer got"
    )


class FeedbackRequest(_Strict):
    decision_id: Annotated[str, Field(min_length=1, max_length=128)]
    reward: StrictFloat | StrictInt


class FeedbackResponse(_Strict):
    """``BanditRouter.feedback``: the reward as recorded, and what it was for."""

    decision_id: str
    reward: float
    action: str | None = Field(description="the action the decision took")
    reason: Reason = Field(description="why that action was taken (the decision's reason)")
    policy_updated: bool = Field(
        description="the policy learned from it: false for holdout, contact-cap and "
        "opted-out rows, and for a context recorded under another layout"
    )


# ---- errors ------------------------------------------------------------------------


class ErrorDetail(_Strict):
    type: str = Field(
        description="serving.errors: invalid_request, malformed_body, not_found, model_not_found, "
        "decision_not_found, conflict, opted_out, explainer_unavailable, model_not_ready, "
        "dependency_unavailable, timeout, internal_error"
    )
    message: str
    field: str | None = Field(
        description="the request field at fault, e.g. customer_ids[3]; null if none"
    )
    evidence: dict[str, Any] | None = Field(
        None,
        exclude_if=lambda v: v is None,  # sent by promotion_refused only
        description="promotion_refused only: each version's estimates, the bound against "
        "the margin and about how many more decisions per arm are needed",
    )


class ErrorResponse(_Strict):
    """The error body of docs/api.md ("Errors"; ``serving.errors.error_body``), on every route
    but /v2."""

    error: ErrorDetail
