"""Wire types of our JSON API (DESIGN.md, "HTTP interface (v1)").

Bounded and strict, so validation names the offending field. Responses are columnar:
one array per field, in request order, as the scoring path produces them. The routes
write answers straight from numpy with orjson; these types are what the OpenAPI schema
states and what the tests check every answer against (``extra="forbid"``, and every
field that is always sent has no default, so it is required in the schema).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt

MAX_IDS = 10_000

CustomerId = Annotated[StrictInt, Field(ge=0, le=2**63 - 1)]
# why a row got its action (serving.bandit.state.REASONS); "forced" on /v1/reengage only
Reason = Literal["policy", "holdout", "contact_cap", "not_found"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())


class ScoreRequest(_Strict):
    customer_ids: list[CustomerId] = Field(min_length=1, max_length=MAX_IDS)


class ModelVersions(_Strict):
    """The version of each model that scored the request."""

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
    reason: list[Reason | None] = Field(description="why this action: policy, holdout, contact_cap, not_found")
    feature_age_s: list[float | None] = Field(description="age of each customer's oldest feature view")
    features_defaulted: list[bool] = Field(description="a stale or missing view was scored with defaults")
    model_versions: ModelVersions


class ReengageRequest(_Strict):
    customer_id: CustomerId
    max_tokens: int | None = Field(None, ge=1, le=2048)
    temperature: float | None = Field(None, ge=0, le=2)
    action: str | None = Field(None, description="force an action instead of the bandit's choice")


class LLMInfo(_Strict):
    backend: str
    model: str
    fallback: bool = Field(description="the model's draft failed a guardrail: the safe template was sent")
    fallback_reason: str | None
    written: bool = Field(description="false for actions that send no email (no_contact)")
    completion_tokens: int


class ReengageResponse(_Strict):
    """One customer's row of ``/v1/score`` as scalars, plus the email. An unknown
    customer is a 404, so ``found`` is always true and both scores are numbers."""

    customer_id: int
    found: bool
    churn_probability: float
    engagement_probability: float
    action: str | None = Field(description="null only without the bandit (then no_contact is written)")
    decision_id: str | None = Field(description="null without the bandit or when the action was forced")
    propensity: float | None
    reason: Reason | Literal["forced"] | None
    feature_age_s: float | None
    model_versions: ModelVersions
    subject: str | None = Field(description="null when no email is sent (no_contact)")
    body: str | None
    llm: LLMInfo


class FeedbackRequest(_Strict):
    decision_id: Annotated[str, Field(min_length=1, max_length=128)]
    reward: StrictFloat | StrictInt


class FeedbackResponse(_Strict):
    """``BanditRouter.feedback``: the reward as recorded, and what it was for."""

    decision_id: str
    reward: float
    action: str | None = Field(description="the action the decision took")
    reason: Reason = Field(description="why that action was taken (the decision's reason)")
    policy_updated: bool = Field(description="the policy learned from it: false for holdout and contact-cap "
                                              "rows, and for a context recorded under another layout")


# ---- errors ------------------------------------------------------------------------


class ErrorDetail(_Strict):
    type: str = Field(description="serving.errors: invalid_request, malformed_body, not_found, model_not_found, "
                                  "decision_not_found, conflict, model_not_ready, dependency_unavailable, timeout, "
                                  "internal_error")
    message: str
    field: str | None = Field(description="the request field at fault, e.g. customer_ids[3]; null if none")


class ErrorResponse(_Strict):
    """DESIGN.md's error body (``serving.errors.error_body``), on every route but /v2."""

    error: ErrorDetail
