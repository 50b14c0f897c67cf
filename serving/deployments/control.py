"""Desired model state shared by every replica, held by a named Ray actor.

``POST /v2/repository/models/{m}/load|unload``, a traffic policy change
(``/v1/admin/rollout/...``) or a version unload reaches one replica; the change must
reach all of them. A detached, named actor holds the desired state per model
(``components.desired.ModelStates``: loaded or not, traffic policy, excluded versions,
a generation that bumps on every change, the moment a policy takes effect) and what
each replica last reported, durable in the shared state store. Every model service syncs
with it once per ``models.poll_interval_s`` (one actor call: its report in, the desired
state out), so a
change reaches every replica within one poll interval; a policy takes effect on all of
them at the same moment, ``activate_at``.
"""

from __future__ import annotations

from typing import Any

import ray
from ray.exceptions import RayActorError

from serving.components.desired import ModelStates

CONTROL_ACTOR = "reengage_model_control"


class RayDesiredState:
    """``components.models.DesiredState`` over the shared actor (created on first use), one
    per Serve application: two applications on one cluster control their models apart.

    ``state``: where the actor keeps the desired state durable (``shared_state.state_spec``;
    None: memory only). When the actor dies (killed, its node lost) the next call creates
    it again; it reads the same state back, so the replicas carry on unchanged."""

    def __init__(self, state: dict[str, Any] | None = None) -> None:
        from ray import serve

        self._app = serve.get_replica_context().app_name or "default"
        self._spec = state
        self._actor: Any = self._connect()

    def _connect(self) -> Any:
        actor_cls = ray.remote(num_cpus=0)(ModelStates)
        return actor_cls.options(
            name=f"{CONTROL_ACTOR}:{self._app}",
            namespace="reengage",
            lifetime="detached",
            get_if_exists=True,
        ).remote(self._spec, f"rollout:{self._app}")

    async def _call(self, method: str, *args: Any) -> Any:
        try:
            return await getattr(self._actor, method).remote(*args)
        except RayActorError:  # died since the last call: a new one reads the store
            self._actor = self._connect()
            return await getattr(self._actor, method).remote(*args)

    async def update(self, model: str, changes: dict[str, Any]) -> dict[str, Any]:
        return await self._call("update", model, changes)

    async def get(self, model: str) -> dict[str, Any]:
        return await self._call("get", model)

    async def seed(
        self, model: str, policy: dict[str, Any] | None, fingerprint: str, activate_at: float
    ) -> dict[str, Any]:
        return await self._call("seed", model, policy, fingerprint, activate_at)

    async def sync(self, model: str, replica: str, report: dict[str, Any]) -> dict[str, Any]:
        return await self._call("sync", model, replica, report)

    async def reports(self, model: str, max_age_s: float = 30.0) -> dict[str, dict[str, Any]]:
        return await self._call("reports", model, max_age_s)

    async def history(self, model: str, last: int | None = None) -> list[dict[str, Any]]:
        return await self._call("history", model, last)
