"""The contextual bandit: arms and context, the policy, holdout and contact caps, the
state store and the decision log's writing, retention and dead letters."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from serving.settings.base import RotationSettings, Section


class BanditSettings(Section):
    enabled: bool = True
    # several routers (actions, model rollout) keep separate state and logs under their name
    name: str = Field("actions", pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    policy: Literal["thompson", "linucb", "lin_ts", "uniform"] = "thompson"
    arms: list[str] = [
        "discount_offer",
        "free_shipping",
        "content_digest",
        "winback_email",
        "no_contact",
    ]
    # columns of the context vector: feature names, or the scores "churn_probability" /
    # "engagement_probability"; the policies add an intercept themselves
    context_features: list[str] = ["churn_probability", "engagement_probability"]
    control_arm: str = "no_contact"  # what holdout and capped customers get
    epsilon: float = Field(
        0.05, ge=0, le=1, description="floor: every arm keeps at least epsilon/K propensity"
    )
    backend: Literal["embedded", "redis"] = "embedded"
    redis_url: str = "redis://127.0.0.1:6379/0"
    state_path: Path | None = None  # embedded backend; default: <data_dir>/bandit
    reward_window_s: float = Field(7 * 24 * 3600, gt=0)
    holdout_share: float = Field(0.05, ge=0, lt=1)
    holdout_salt: str = "reengage-holdout"  # changing it reshuffles who is held out
    contact_cap: int = Field(
        3, ge=0, description="contacts per customer per cap window (0: no cap)"
    )
    contact_window_s: float = Field(7 * 24 * 3600, gt=0)
    discount: float = Field(
        1.0, gt=0, le=1, description="<1 forgets old rewards (non-stationarity)"
    )
    alpha: float = Field(1.0, gt=0, description="LinUCB exploration / LinTS scale")
    ridge: float = Field(1.0, gt=0, description="prior precision of the linear policies")
    # Monte Carlo draws per row that estimate LinTS propensities (context-free Thompson
    # sampling uses 16x as many, once per batch); the action is sampled from that estimate,
    # so the logged propensity is exact whatever the count
    ts_samples: int = Field(64, ge=8, le=10_000)
    sync_interval_s: float = Field(
        1.0, ge=0, description="how often a replica checks for state learned elsewhere"
    )
    seed: int | None = None
    # Redis socket and connect timeout: a hung Redis is a 503 after this, not a stuck replica
    timeout_s: float = Field(
        0.25, gt=0, description="fail fast when the bandit state (Redis) is slow"
    )
    # the decision log is written by a background thread, in groups: at the latest this long
    # after a decision (a crash loses at most this much), or once flush_rows rows wait
    flush_interval_s: float = Field(0.05, gt=0, le=10)
    flush_rows: int = Field(10_000, ge=1)
    # decision rows waiting for the state store, at most; beyond it a decision is refused
    # (503 overloaded, Retry-After) rather than queued without bound or dropped
    log_queue_rows: int = Field(100_000, ge=1)
    # retention of the decision log and rewards: by time (never under the reward window),
    # then by size; a decision whose reward window is open is never trimmed
    log_retention_s: float = Field(30 * 24 * 3600, gt=0)
    log_max_mb: float | None = Field(
        1024.0, gt=0, description="decision log and rewards, at most (None: no cap)"
    )
    trim_interval_s: float = Field(60.0, gt=0)
    # a log-only record the store refuses for a reason other than being unavailable (a
    # poison record) is tried alone this many times, then written to the dead-letter file
    # and counted (reengage_bandit_dead_letters_total), so the queue moves on
    dead_letter_tries: int = Field(
        5, ge=1, le=1000, description="tries of a failing record before its dead letter"
    )
    dead_letter_file: Path | None = Field(
        None, description="JSON lines of dead records; default <state_path>/dead_letters.jsonl"
    )
    dead_letter_rotation: RotationSettings = RotationSettings()

    @model_validator(mode="after")
    def _arms_consistent(self) -> "BanditSettings":
        if len(self.arms) < 2 or len(set(self.arms)) != len(self.arms):
            raise ValueError("bandit.arms needs at least two distinct arms")
        if self.log_retention_s < self.reward_window_s:
            raise ValueError(
                "bandit.log_retention_s must be at least bandit.reward_window_s: "
                "a decision is kept while its reward can still arrive"
            )
        if (self.holdout_share > 0 or self.contact_cap > 0) and self.control_arm not in self.arms:
            raise ValueError(
                f"bandit.control_arm {self.control_arm!r} must be one of the arms "
                "when holdout_share or contact_cap is set"
            )
        return self
