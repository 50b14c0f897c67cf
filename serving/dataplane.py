"""The dataplane: what the endpoints do, with no HTTP and no Ray in sight.

``DataPlane`` is the composition root the routes receive: it holds the components and
one plane per concern, and each route calls the plane it needs (``serving.planes``):
``inference`` (v1 score, explain, reengage, feedback; OpenAI completions), ``kserve``
(the v2 protocol and the model repository), ``privacy`` (consent and erasure:
``components.privacy.PrivacyService``), ``monitoring`` (``/v1/monitor``), ``rollouts``
(traffic policies, evidence, promotion).
Here stays what spans them: readiness and the graceful close.
"""

from __future__ import annotations

import asyncio


from serving.components.api import Bandit, Features, Model, Writer
from serving.components.privacy import PrivacyService
from serving.monitoring import Monitor
from serving.planes.inference import InferencePlane
from serving.planes.kserve import KServePlane
from serving.planes.lookup import model_named
from serving.planes.monitor import MonitorPlane
from serving.planes.rollouts import Rollouts
from serving.privacy import ConsentView, consent_view
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
        # who opted out: an in-memory array every replica keeps current (serving.privacy)
        self.consent = consent if consent is not None else consent_view(settings)
        self.monitor = monitor
        self.inference = InferencePlane(
            settings, features, models, self.consent, bandit, writer, monitor
        )
        self.kserve = KServePlane(settings, models)
        self.privacy = PrivacyService(settings, features, bandit)
        self.monitoring = MonitorPlane(settings, monitor)
        self.rollouts = Rollouts(settings, features, models, bandit)

    async def close(self) -> None:
        """Graceful stop: what the components still hold (the bandit's queued decision log)
        is written before the process goes."""
        if self.bandit is not None:
            await self.bandit.close()
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
