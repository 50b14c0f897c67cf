"""Desired model state shared by every replica, held by a named Ray actor.

``POST /v2/repository/models/{m}/load|unload``, a traffic policy change
(``/v1/admin/rollout/...``) or a version unload reaches one replica; the change must
reach all of them. A detached, named actor holds the desired state per model
(``components.rollout.ModelStates``: loaded or not, traffic policy, excluded versions,
a generation that bumps on every change, the moment a policy takes effect) and what
each replica last reported. Every model service syncs with it once per
``models.poll_interval_s`` (one actor call: its report in, the desired state out), so a
change reaches every replica within one poll interval; a policy takes effect on all of
them at the same moment, ``activate_at``.
"""

from __future__ import annotations

from typing import Any

import ray

from serving.components.rollout import ModelStates

CONTROL_ACTOR = "reengage_model_control"


class RayDesiredState:
    """``components.models.DesiredState`` over the shared actor (created on first use), one
    per Serve application: two applications on one cluster control their models apart."""

    def __init__(self) -> None:
        from ray import serve

        app = serve.get_replica_context().app_name or "default"
        actor_cls = ray.remote(num_cpus=0)(ModelStates)
        self._actor: Any = actor_cls.options(name=f"{CONTROL_ACTOR}:{app}", namespace="reengage",
                                             lifetime="detached", get_if_exists=True).remote()

    async def update(self, model: str, changes: dict[str, Any]) -> dict[str, Any]:
        return await self._actor.update.remote(model, changes)

    async def get(self, model: str) -> dict[str, Any]:
        return await self._actor.get.remote(model)

    async def seed(self, model: str, policy: dict[str, Any] | None, fingerprint: str,
                   activate_at: float) -> dict[str, Any]:
        return await self._actor.seed.remote(model, policy, fingerprint, activate_at)

    async def sync(self, model: str, replica: str, report: dict[str, Any]) -> dict[str, Any]:
        return await self._actor.sync.remote(model, replica, report)

    async def reports(self, model: str, max_age_s: float = 30.0) -> dict[str, dict[str, Any]]:
        return await self._actor.reports.remote(model, max_age_s)
