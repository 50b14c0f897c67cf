"""Desired model state shared by every replica, held by a named Ray actor.

``POST /v2/repository/models/{m}/load|unload`` reaches one replica; the change must
reach all of them. A detached, named actor holds the desired state per model (loaded or
not, and a generation that bumps on every call), and each model service reconciles
with it on its repository poll (``ModelService.reconcile``).
"""

from __future__ import annotations

from typing import Any

import ray

CONTROL_ACTOR = "reengage_model_control"


class _State:
    """The actor's state: plain Python, one copy per cluster."""

    def __init__(self) -> None:
        self._state: dict[str, tuple[int, bool]] = {}

    def set(self, model: str, loaded: bool) -> int:
        generation = self._state.get(model, (0, True))[0] + 1
        self._state[model] = (generation, loaded)
        return generation

    def get(self, model: str) -> tuple[int, bool]:
        return self._state.get(model, (0, True))


class RayDesiredState:
    """``components.models.DesiredState`` over the shared actor (created on first use), one
    per Serve application: two applications on one cluster control their models apart."""

    def __init__(self) -> None:
        from ray import serve

        app = serve.get_replica_context().app_name or "default"
        actor_cls = ray.remote(num_cpus=0)(_State)
        self._actor: Any = actor_cls.options(name=f"{CONTROL_ACTOR}:{app}", namespace="reengage",
                                             lifetime="detached", get_if_exists=True).remote()

    async def set(self, model: str, loaded: bool) -> int:
        return await self._actor.set.remote(model, loaded)

    async def get(self, model: str) -> tuple[int, bool]:
        return await self._actor.get.remote(model)
