"""The dataplane: what the endpoints do, with no HTTP and no Ray in sight.

``DataPlane`` is the composition root the routes receive: it holds the components and
one plane per concern, and each route calls the plane it needs (``serving.planes``):
``inference`` (v1 score, explain, reengage, feedback; OpenAI completions), ``kserve``
(the v2 protocol and the model repository), ``privacy`` (consent and erasure:
``components.privacy.PrivacyService``), ``monitoring`` (``/v1/monitor``). Here stay
what spans them: readiness, the graceful close, and the rollout admin calls.
"""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np

from serving import audit
from serving.components.api import Bandit, Features, Model, Writer
from serving.components.evidence import PROMOTABLE, refusal_message
from serving.components.privacy import PrivacyService
from serving.components.rollout import PromotionRefused
from serving.monitoring import Monitor
from serving.planes.inference import InferencePlane
from serving.planes.kserve import KServePlane
from serving.planes.lookup import model_named
from serving.planes.monitor import MonitorPlane
from serving.privacy import ConsentView, consent_view
from serving.security import ANONYMOUS
from serving.settings import Settings


class DataPlane:
    """The components, and the planes over them that the routes call."""

    def __init__(
        self,
        settings: Settings,
        features: Features,
        models: dict[str, Model],
        bandit: Bandit | None = None,
        writer: Writer | None = None,
        *,
        consent: ConsentView | None = None,
        monitor: Monitor | None = None,
    ) -> None:
        self.settings = settings
        self.features = features
        self.models = models
        self.bandit = bandit
        self.writer = writer
        self._index: Any = None  # the rollout evidence's running sums (components.evidence_index)
        # who opted out: an in-memory array every replica keeps current (serving.privacy)
        self.consent = consent if consent is not None else consent_view(settings)
        self.monitor = monitor
        self.inference = InferencePlane(
            settings, features, models, self.consent, bandit, writer, monitor
        )
        self.kserve = KServePlane(settings, models)
        self.privacy = PrivacyService(settings, features, bandit)
        self.monitoring = MonitorPlane(settings, monitor)

    async def close(self) -> None:
        """Graceful stop: what the components still hold (the bandit's queued decision log)
        is written before the process goes."""
        if self.bandit is not None:
            await self.bandit.close()
        if self._index is not None:
            self._index.close()
        if self.monitor is not None:
            await asyncio.to_thread(self.monitor.close)

    async def ready(self) -> bool:
        """Every model loaded, the online store answering with every view, and the bandit's
        state store taking writes (cached checks, none of them a round trip)."""
        checks = [m.ready() for m in self.models.values()]
        for component in (self.features, self.bandit, self.consent):
            component_ready = getattr(component, "ready", None)
            if component_ready is not None:
                checks.append(component_ready())
        states = await asyncio.gather(*checks, return_exceptions=True)
        return bool(self.models) and all(s is True for s in states)

    def _model(self, name: str) -> Model:
        return model_named(self.models, name)

    # -- rollout (admin): traffic policy per model, evidence, promotion ---------------------------
    async def rollout_start(
        self, name: str, policy: dict[str, Any], actor: str = ANONYMOUS
    ) -> dict[str, Any]:
        """Set ``name``'s traffic policy once its versions load, warm and fit the features
        read; answers when every replica applies it (``propagation_s``)."""
        model = self._model(name)
        async with audit.action(self.settings, "rollout.start", actor=actor, model=name) as entry:
            entry["version"] = ",".join(
                c["version"] for c in policy.get("candidates") or []
            ) or policy.get("default")
            entry["details"]["policy"] = policy
            batch = await self.features.lookup(
                np.zeros(1, dtype=np.int64)
            )  # the features the store feeds
            answer = await model.set_traffic(policy, tuple(batch.names))
            entry["details"]["propagation_s"] = answer.get("propagation_s")
        return answer

    async def rollout_status(self, name: str, confidence: float = 0.95) -> dict[str, Any]:
        status = await self._model(name).traffic()
        policy = status.get("policy") or {}
        candidates = [c["version"] for c in policy.get("candidates") or []]
        status["evidence"] = await self._evidence(
            name, policy.get("default"), candidates, status.get("started_at"), confidence
        )
        return status

    async def rollout_promote(
        self,
        name: str,
        version: str | None = None,
        force: bool = False,
        confidence: float = 0.95,
        actor: str = ANONYMOUS,
    ) -> dict[str, Any]:
        """Promoted only when the evidence shows the candidate non-inferior to the default
        (``components.evidence.compare``); else 409 with the estimates and the decisions
        still needed. ``force`` overrides, and the audit log keeps the evidence with it."""
        model = self._model(name)
        async with audit.action(
            self.settings, "rollout.promote", actor=actor, model=name, version=version
        ) as entry:
            status = await model.traffic()
            policy = status.get("policy") or {}
            candidates = [c["version"] for c in policy.get("candidates") or []]
            target = version or (candidates[0] if len(candidates) == 1 else None)
            entry["version"] = target
            evidence = await self._evidence(
                name,
                policy.get("default"),
                [target] if target else [],
                status.get("started_at"),
                confidence,
            )
            verdict = (evidence.get("comparisons") or {}).get(target or "", {})
            entry["details"].update(forced=force, evidence=verdict or evidence)
            gated = target is not None and target != policy.get(
                "default"
            )  # else promote() says why not
            if gated and not force and verdict.get("verdict") not in PROMOTABLE:
                raise PromotionRefused(
                    refusal_message(name, target, policy.get("default"), verdict, evidence),
                    field="version",
                    evidence=verdict or evidence,
                )
            answer = await model.promote(target)
        return {**answer, "evidence": verdict or evidence, "forced": force}

    async def rollout_rollback(self, name: str, actor: str = ANONYMOUS) -> dict[str, Any]:
        model = self._model(name)
        async with audit.action(
            self.settings, "rollout.rollback", actor=actor, model=name
        ) as entry:
            answer = await model.rollback()
            entry["version"] = (answer.get("policy") or {}).get("default")
        return answer

    async def version_control(
        self, name: str, version: str, unload: bool, actor: str = ANONYMOUS
    ) -> dict[str, Any]:
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
    ) -> dict[str, Any]:
        """Each version's resolved decisions and mean reward since the rollout started, and
        each candidate against the default (``components.evidence``), from running sums
        (``components.evidence_index``), not a read of the whole log."""
        if self.bandit is None or not self.settings.bandit.enabled:
            return {"available": False, "reason": "the bandit is disabled: no decision log"}
        from serving.components.evidence import compare

        role = (
            "churn"
            if name == self.settings.models.churn
            else "engagement"
            if name == self.settings.models.engagement
            else name
        )
        m = self.settings.models
        try:
            stats = await asyncio.to_thread(
                self._evidence_index().refresh, role, float(since or 0.0)
            )
        except Exception as exc:  # evidence is advice: a store outage is said, not raised
            return {
                "available": False,
                "reason": f"decision log unreadable: {type(exc).__name__}: {exc}",
            }
        comparisons = {
            c: compare(
                stats,
                default,
                c,
                confidence=confidence,
                margin=m.rollout_margin,
                min_decisions=m.rollout_min_decisions,
            )
            for c in candidates
            if default
        }
        return {
            "available": True,
            "since": since,
            "confidence": confidence,
            "margin": m.rollout_margin,
            "values": {v: s.to_dict() for v, s in stats.items()},
            "comparisons": comparisons,
        }

    def _evidence_index(self) -> Any:
        if self._index is None:
            from serving.bandit.state import open_store
            from serving.components.evidence_index import EvidenceIndex

            b = self.settings.bandit
            self._index = EvidenceIndex(lambda: open_store(b), b.reward_window_s)
        return self._index
