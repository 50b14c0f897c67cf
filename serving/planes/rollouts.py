"""Model rollouts (admin): traffic policy per model, its evidence, promotion, rollback.

What the ``/v1/admin/rollout`` and version routes do, with no HTTP and no Ray in sight.
Each call is audited with the caller's token name. The evidence comes from the bandit
component (``Bandit.evidence``: each version's resolved decisions in the decision log)
and is judged by ``components.evidence.compare``; a promotion the evidence does not
support is refused unless forced.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from serving import audit
from serving.components.api import Bandit, Features, Model
from serving.components.evidence import PROMOTABLE, Comparison, Evidence, compare, refusal_message
from serving.components.rollout_control import TrafficChange, TrafficReport
from serving.components.traffic_policy import PromotionRefused
from serving.errors import ModelNotFound
from serving.security import ANONYMOUS
from serving.settings import Settings


@dataclass(frozen=True)
class RolloutStatus:
    """A model's traffic report and the evidence of its running rollout."""

    traffic: TrafficReport
    evidence: Evidence

    def to_json(self) -> dict[str, Any]:
        """The wire shape of docs/api.md: the report's fields, then ``evidence``."""
        return {**self.traffic.to_json(), "evidence": self.evidence.to_json()}


@dataclass(frozen=True)
class Promotion:
    """A promotion made: the change, the evidence it was judged on, whether forced."""

    change: TrafficChange
    evidence: Comparison | Evidence
    forced: bool

    def to_json(self) -> dict[str, Any]:
        return {**self.change.to_json(), "evidence": self.evidence.to_json(), "forced": self.forced}


class Rollouts:
    """The rollout admin calls over every model service and the bandit's decision log."""

    def __init__(
        self,
        settings: Settings,
        features: Features,
        models: Mapping[str, Model],
        bandit: Bandit | None = None,
    ) -> None:
        self.settings = settings
        self.features = features
        self.models = models
        self.bandit = bandit

    def _model(self, name: str) -> Model:
        service = self.models.get(name)
        if service is None:
            raise ModelNotFound(f"model '{name}' is not in the repository", field="model_name")
        return service

    async def start(
        self, name: str, policy: dict[str, Any], actor: str = ANONYMOUS
    ) -> TrafficChange:
        """Set ``name``'s traffic policy once its versions load, warm and fit the features
        read; answers when every replica applies it (``propagation_s``)."""
        model = self._model(name)
        async with audit.action(self.settings, "rollout.start", actor=actor, model=name) as entry:
            entry["version"] = ",".join(
                c["version"] for c in policy.get("candidates") or []
            ) or policy.get("default")
            entry["details"]["policy"] = policy
            # the features the store feeds: a version needing others is refused
            batch = await self.features.lookup(np.zeros(1, dtype=np.int64))
            answer = await model.set_traffic(policy, tuple(batch.names))
            entry["details"]["propagation_s"] = answer.propagation_s
        return answer

    async def status(self, name: str, confidence: float = 0.95) -> RolloutStatus:
        traffic = await self._model(name).traffic()
        evidence = await self._evidence(
            name, traffic.default, traffic.candidates, traffic.started_at, confidence
        )
        return RolloutStatus(traffic, evidence)

    async def promote(
        self,
        name: str,
        version: str | None = None,
        force: bool = False,
        confidence: float = 0.95,
        actor: str = ANONYMOUS,
    ) -> Promotion:
        """Promoted only when the evidence shows the candidate non-inferior to the default
        (``components.evidence.compare``); else 409 with the estimates and the decisions
        still needed. ``force`` overrides, and the audit log keeps the evidence with it."""
        model = self._model(name)
        async with audit.action(
            self.settings, "rollout.promote", actor=actor, model=name, version=version
        ) as entry:
            traffic = await model.traffic()
            candidates = traffic.candidates
            target = version or (candidates[0] if len(candidates) == 1 else None)
            entry["version"] = target
            evidence = await self._evidence(
                name, traffic.default, [target] if target else [], traffic.started_at, confidence
            )
            verdict = evidence.comparisons.get(target or "")
            judged: Comparison | Evidence = verdict or evidence
            entry["details"].update(forced=force, evidence=judged.to_json())
            # a target that is already the default: promote() says why not
            gated = target is not None and target != traffic.default
            if gated and not force and (verdict is None or verdict.verdict not in PROMOTABLE):
                raise PromotionRefused(
                    refusal_message(name, target, traffic.default, verdict, evidence),
                    field="version",
                    evidence=judged.to_json(),
                )
            answer = await model.promote(target)
        return Promotion(answer, judged, force)

    async def rollback(self, name: str, actor: str = ANONYMOUS) -> TrafficChange:
        model = self._model(name)
        async with audit.action(
            self.settings, "rollout.rollback", actor=actor, model=name
        ) as entry:
            answer = await model.rollback()
            entry["version"] = (answer.policy or {}).get("default")
        return answer

    async def version_control(
        self, name: str, version: str, unload: bool, actor: str = ANONYMOUS
    ) -> TrafficChange:
        """Unload one version on every replica (refused while it takes traffic), or load it back."""
        model = self._model(name)
        action = "version.unload" if unload else "version.load"
        async with audit.action(self.settings, action, actor=actor, model=name, version=version):
            return await model.exclude_version(version, unload)

    async def _evidence(
        self,
        name: str,
        default: str | None,
        candidates: list[str],
        since: float | None,
        confidence: float,
    ) -> Evidence:
        """Each version's resolved decisions and mean reward since the rollout started, and
        each candidate against the default (``components.evidence``)."""
        if self.bandit is None or not self.settings.bandit.enabled:
            return Evidence.unavailable("the bandit is disabled: no decision log")
        m = self.settings.models
        role = "churn" if name == m.churn else "engagement" if name == m.engagement else name
        stats = await self.bandit.evidence(role, float(since or 0.0))
        if stats.error is not None:
            return Evidence.unavailable(f"decision log unreadable: {stats.error}")
        comparisons = {
            c: compare(
                stats.values,
                default,
                c,
                confidence=confidence,
                margin=m.rollout_margin,
                min_decisions=m.rollout_min_decisions,
            )
            for c in candidates
            if default
        }
        return Evidence(
            available=True,
            since=since,
            confidence=confidence,
            margin=m.rollout_margin,
            values={v: s.estimate() for v, s in stats.values.items()},
            comparisons=comparisons,
        )
