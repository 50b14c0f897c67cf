"""The scoring models: the repository, batching and offload, the model control mode and
each model's traffic policy (rollouts, shadow, the promotion gate)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationInfo, field_validator

from serving.settings.base import Section, project_root


class TrafficCandidate(Section):
    version: str = Field(pattern=r"^[0-9]+$")
    weight: float = Field(ge=0, le=100, description="percent of customers it scores")


class TrafficShadow(Section):
    version: str = Field(pattern=r"^[0-9]+$")
    percent: float = Field(
        100.0, gt=0, le=100, description="percent of scored rows it also scores, off the answer"
    )


class TrafficPolicyConfig(Section):
    """One model's traffic (Seldon Core 2's experiment shape): the default version takes
    whatever the candidates do not; assignment is sticky by a salted hash of the customer id."""

    default: str | None = Field(
        None, pattern=r"^[0-9]+$", description="None: the newest loaded version"
    )
    candidates: list[TrafficCandidate] = []
    shadow: TrafficShadow | None = None
    salt: str | None = Field(
        None,
        min_length=1,
        max_length=200,
        description="fixed when a rollout starts (any string); None: the running "
        "rollout's salt, or a new random one",
    )
    buckets: dict[str, list[tuple[int, int]]] | None = Field(
        None, description="set by the server: the [start, end) bucket ranges each candidate owns"
    )

    @field_validator("candidates")
    @classmethod
    def _consistent(
        cls, candidates: list[TrafficCandidate], info: ValidationInfo
    ) -> list[TrafficCandidate]:
        """On the field, so the error names ``candidates``."""
        versions = [c.version for c in candidates]
        default = info.data.get("default")
        if len(set(versions)) != len(versions) or (default is not None and default in versions):
            raise ValueError("candidate versions must be distinct and differ from the default")
        if sum(c.weight for c in candidates) > 100:
            raise ValueError("candidate weights add up to more than 100 percent")
        return candidates


class ModelSettings(Section):
    repo_path: Path = Field(default_factory=lambda: project_root() / "model_repo")
    churn: str = "churn"
    engagement: str = "engagement"
    # None: config.pbtxt's dynamic_batching.max_queue_delay_microseconds (0 as exported)
    batch_wait_timeout_s: float | None = Field(None, ge=0)
    intra_op_threads: int = Field(
        1, ge=0, description="ONNX Runtime threads per replica (0: ORT default)"
    )
    # Every replica re-reads the repository this often: new versions go live everywhere
    # (loaded before old ones are dropped), and repository load/unload calls made on one
    # replica reach the others. 0 turns it off.
    poll_interval_s: float = Field(5.0, ge=0)
    # runtime calls of fewer rows run inline on the event loop (a thread hand-off costs more
    # than the call), larger ones in a thread (serving/components/offload.py; docs/benchmarks.md,
    # "What moved the figures"); lower it where a replica has spare cores
    offload_rows: int = Field(16_384, ge=0)
    # Dynamic batching inside a Serve replica: "asyncio" (the in-process batcher: an idle
    # model runs a call at once, calls arriving meanwhile form the next batch) or "serve"
    # (Ray Serve's serve.batch: serving/deployments/batching.py). asyncio is the default as
    # the cheaper per request: serve.batch records its own metrics per batch and hands each
    # batch to a task (docs/benchmarks.md, "Ray's own overheads").
    batcher: Literal["asyncio", "serve"] = "asyncio"
    # Triton's model control modes: "poll" (new versions on disk go live, load/unload calls
    # work), "explicit" (only load/unload calls and rollouts change what is loaded), "none"
    # (what is on disk at start stays; load/unload calls are refused)
    control_mode: Literal["none", "poll", "explicit"] = "poll"
    # traffic policy per model (so `serve deploy` carries it); `reengage rollout` and the
    # /v1/admin/rollout calls change it live. A changed policy here wins over live changes.
    rollout: dict[str, TrafficPolicyConfig] = {}
    # a policy change takes effect on every replica at one moment, this long after it is
    # made (None: poll_interval_s + 0.5 s: every replica has polled and warmed its versions)
    rollout_activation_s: float | None = Field(None, ge=0)
    # the promotion gate: a candidate is promoted when the lower bound of (candidate -
    # default) mean reward, an always-valid confidence sequence, is above -margin (reward
    # units: 0.01 is one point of conversion rate); fewer resolved decisions than
    # rollout_min_decisions on either arm is "insufficient"
    rollout_margin: float = Field(0.01, gt=0)
    rollout_min_decisions: int = Field(200, ge=2)
    # shadow calls in flight per model and replica; beyond it a batch's shadow is skipped
    # and counted (reengage_shadow_skipped_rows_total): a slow shadow never piles up tasks
    shadow_max_tasks: int = Field(64, ge=0)
