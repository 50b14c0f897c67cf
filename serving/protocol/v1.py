"""Wire types of our JSON API (DESIGN.md, "HTTP interface (v1)").

Bounded and strict, so validation names the offending field. Responses are columnar:
one array per field, in request order, as the scoring path produces them.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt

MAX_IDS = 10_000

CustomerId = Annotated[StrictInt, Field(ge=0, le=2**63 - 1)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())


class ScoreRequest(_Strict):
    customer_ids: list[CustomerId] = Field(min_length=1, max_length=MAX_IDS)


class ScoreResponse(_Strict):
    """Documentation of the answer; the route writes it straight from numpy arrays."""

    customer_ids: list[int]
    found: list[bool]
    churn_probability: list[float | None]
    engagement_probability: list[float | None]
    action: list[str | None]
    decision_id: list[str | None]
    propensity: list[float | None]
    reason: list[str | None] = Field(description="why this action: policy, holdout, contact_cap, not_found")
    feature_age_s: list[float | None] = Field(description="age of each customer's oldest feature view")
    features_defaulted: list[bool] = Field(description="a stale or missing view was scored with defaults")
    model_versions: dict[str, str]


class ReengageRequest(_Strict):
    customer_id: CustomerId
    max_tokens: int | None = Field(None, ge=1, le=2048)
    temperature: float | None = Field(None, ge=0, le=2)
    action: str | None = Field(None, description="force an action instead of the bandit's choice")


class LLMInfo(_Strict):
    backend: str
    model: str
    fallback: bool = Field(False, description="the model's draft failed a guardrail: the safe template was sent")
    fallback_reason: str | None = None
    written: bool = Field(True, description="false for actions that send no email (no_contact)")
    completion_tokens: int = 0


class ReengageResponse(_Strict):
    customer_id: int
    found: bool
    churn_probability: float | None
    engagement_probability: float | None
    action: str | None
    decision_id: str | None
    propensity: float | None
    reason: str | None = None
    feature_age_s: float | None = None
    model_versions: dict[str, str]
    subject: str | None = Field(description="null when no email is sent (no_contact)")
    body: str | None
    llm: LLMInfo | None


class FeedbackRequest(_Strict):
    decision_id: Annotated[str, Field(min_length=1, max_length=128)]
    reward: StrictFloat | StrictInt


class FeedbackResponse(_Strict):
    decision_id: str
    recorded: bool = True
    action: str | None = None
