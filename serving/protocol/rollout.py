"""Wire types of the rollout admin API (``/v1/admin/rollout/...``, ``reengage rollout``).

The policy body is the Serve config's own type (``settings.TrafficPolicyConfig``), so a
policy written in ``deploy/serve.yaml`` and one sent by the CLI read the same.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from serving.settings import TrafficPolicyConfig


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())


class RolloutRequest(TrafficPolicyConfig):
    """A traffic policy as a client sends it: ``{"default": "3", "candidates": [{"version": "4",
    "weight": 10}], "shadow": {"version": "5", "percent": 50}}``"""

    @field_validator("buckets")
    @classmethod
    def _server_owned(cls, value: Any) -> None:
        if value is not None:
            raise ValueError("buckets are assigned by the server; send weights")
        return None


class PromoteRequest(_Strict):
    version: str | None = Field(
        None, pattern=r"^[0-9]+$", description="the candidate to promote (default: the only one)"
    )
    force: bool = Field(
        False, description="promote although the evidence says the candidate is worse (audited)"
    )
    confidence: float = Field(0.95, gt=0, lt=1, description="of the evidence's intervals")


class EmptyRequest(_Strict):
    """No fields: the call itself is the request."""


class RolloutChange(BaseModel):
    """A policy change, answered once every live replica applied it."""

    model_config = ConfigDict(extra="allow", protected_namespaces=())

    model: str
    generation: int
    policy: dict[str, Any] | None = Field(
        description="the policy now in force (null: newest version, no split)"
    )
    activation_delay_s: float = Field(
        description="the change takes effect on every replica this long after it was made"
    )
    effective_at: float = Field(description="unix time it took effect")
    acknowledged_after_s: dict[str, float] = Field(
        description="per replica: when it had applied the change"
    )
    late_replicas: list[str] = Field(
        description="replicas that had not acknowledged within the bound"
    )
    propagation_s: float = Field(description="the slowest replica's acknowledgement, measured")


class RolloutStatus(BaseModel):
    """The desired state, what each replica reports, the shadow summary and the evidence."""

    model_config = ConfigDict(extra="allow", protected_namespaces=())

    model: str
    generation: int
    policy: dict[str, Any] | None
    versions: list[str]
    failures: dict[str, str] = Field(description="versions that could not load, and why")
    replicas: dict[str, dict[str, Any]]
    shadow: dict[str, Any] | None = Field(
        description="shadow against default: score differences, latency"
    )
    evidence: dict[str, Any] = Field(
        description="per-version value from the decision log with intervals"
    )
