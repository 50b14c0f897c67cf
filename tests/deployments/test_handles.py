"""The split topology's clients forward each method of their component's protocol by name:
every protocol method exists on the component the deployment serves, a forwarded call
answers what the component answers, and a name the protocol does not declare is refused."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from serving.components.api import Administration, Bandit, Features, Model, Scoring
from serving.components.bandit import BanditService
from serving.components.features import FeatureLookup
from serving.components.models import ModelService
from serving.deployments.failures import NamedHandle
from serving.deployments.handles import Forwarded, protocol_methods
from serving.settings import load_settings
from tests.serving.conftest import model_repo  # noqa: F401  (fixture)

NAMES = ("a", "b", "c")


class _Method:
    def __init__(self, fn: Callable[..., Awaitable[Any]]) -> None:
        self.fn = fn

    def remote(self, *args: Any, **kwargs: Any) -> Awaitable[Any]:
        return self.fn(*args, **kwargs)


class InProcessHandle:
    """A DeploymentHandle's call shape (``handle.<method>.remote(...)``) over an object in
    this process: what a Serve replica does with the call, without Ray."""

    def __init__(self, target: object) -> None:
        self.target = target
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> _Method:
        self.calls.append(name)
        return _Method(getattr(self.target, name))


@pytest.mark.parametrize(
    ("protocol", "component"),
    [(Model, ModelService), (Bandit, BanditService), (Features, FeatureLookup)],
)
def test_every_protocol_method_is_served_by_the_component(protocol: type, component: type) -> None:
    missing = [m for m in protocol_methods(protocol) if not callable(getattr(component, m, None))]
    assert not missing


def test_the_model_protocol_is_scoring_and_administration() -> None:
    assert protocol_methods(Model) == protocol_methods(Scoring) | protocol_methods(Administration)
    assert {"score_rows", "infer", "ready"} <= protocol_methods(Scoring)
    assert {"set_traffic", "promote", "traffic", "unload"} <= protocol_methods(Administration)
    assert not protocol_methods(Scoring) & protocol_methods(Administration)


def test_a_forwarded_call_answers_what_the_component_answers(model_repo: Path) -> None:  # noqa: F811
    settings = load_settings({"models": {"repo_path": str(model_repo)}})
    service = ModelService("churn", settings.models)
    handle = InProcessHandle(service)
    client: Any = Forwarded(NamedHandle(handle, "model churn"), Model)  # type: ignore[arg-type]
    x = np.random.default_rng(0).normal(size=(8, 3)).astype(np.float32)

    async def run() -> tuple[Any, ...]:
        remote = await client.score(x, NAMES)
        direct = await service.score(x, NAMES)
        await client.score(x, NAMES, "1")  # the second call finds the method already built
        change = await client.set_traffic({"default": "1"}, NAMES)
        return remote, direct, change, await client.traffic()

    remote, direct, change, report = asyncio.run(run())
    assert remote[0] == direct[0] and np.array_equal(remote[1], direct[1])
    assert change.policy["default"] == "1" and report.generation == change.generation
    assert handle.calls == ["score", "set_traffic", "traffic"]  # looked up once per method
    with pytest.raises(AttributeError, match="no method 'registry'"):
        client.registry  # an attribute of the component, not of its protocol
