"""Desired model state shared by every replica of the application.

``POST /v2/repository/models/{m}/load|unload`` reaches one replica; the change must
reach all of them. A detached, named Ray actor holds the desired state per model
(loaded or not, and a generation that bumps on every call), and each ModelServer
reconciles with it on its repository poll. Outside Ray (unit tests, plain uvicorn)
there is one process and no actor.
"""

from __future__ import annotations

from typing import Any

CONTROL_ACTOR = "reengage_model_control"


class ModelControl:
    def __init__(self) -> None:
        self._state: dict[str, tuple[int, bool]] = {}

    def set(self, model: str, loaded: bool) -> int:
        generation = self._state.get(model, (0, True))[0] + 1
        self._state[model] = (generation, loaded)
        return generation

    def get(self, model: str) -> tuple[int, bool]:
        return self._state.get(model, (0, True))


def control_actor() -> Any | None:
    """The shared actor, created on first use; None outside a Ray cluster."""
    import ray

    if not ray.is_initialized():
        return None
    actor_cls = ray.remote(num_cpus=0)(ModelControl)
    return actor_cls.options(name=CONTROL_ACTOR, namespace="reengage", lifetime="detached",
                             get_if_exists=True).remote()
