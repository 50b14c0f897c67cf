"""Typed clients over DeploymentHandles: the split topology's components.

Each client has the methods of the protocol its component satisfies
(``components.api``), so the dataplane calls a component the same way whether it lives
in the ingress replica (fused) or in its own deployment (split). The clients forward by
name (``Forwarded``), typed through the protocol; only the writer, whose stream and
deadline need their own handle options, is written out. Handle options are configured
once here and cached, as Ray's OpenAiIngress does.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Generic, Protocol, cast

from ray.serve.handle import DeploymentHandle

from serving.components.api import Bandit, Features, Model
from serving.deployments.failures import NamedHandle, named


def protocol_methods(protocol: type) -> frozenset[str]:
    """The public methods a Protocol (and the protocols it extends) declares."""
    return frozenset(
        name
        for cls in protocol.__mro__
        if cls not in (object, Protocol, Generic)
        for name, value in vars(cls).items()
        if callable(value) and not name.startswith("_")
    )


class Forwarded:
    """A component's client: each method of its protocol forwarded to the deployment, so
    ``client.score(x)`` is ``await handle.score.remote(x)`` and no method is copied here.

    A name the protocol does not declare is an ``AttributeError`` (the deployment would
    answer it with a remote one). Each method is built on first use and kept."""

    def __init__(self, handle: NamedHandle, protocol: type) -> None:
        self._h = handle
        self._methods = protocol_methods(protocol)

    def __getattr__(self, name: str) -> Callable[..., Awaitable[Any]]:
        if name.startswith("_") or name not in self._methods:
            raise AttributeError(f"{type(self).__name__} has no method {name!r}")
        method = getattr(self._h, name)

        async def call(*args: Any, **kwargs: Any) -> Any:
            return await method.remote(*args, **kwargs)

        call.__name__ = call.__qualname__ = name
        setattr(self, name, call)  # found as an attribute from now on, not through here
        return call


class _RemoteBandit(Forwarded):
    async def close(self) -> None:
        """Nothing to do: the bandit's own deployment flushes on its graceful stop."""


def remote_features(handle: DeploymentHandle) -> Features:
    """The feature lookup deployment; a dead replica is a 503 naming it."""
    return cast(Features, Forwarded(named(handle, "feature lookup"), Features))


def remote_model(handle: DeploymentHandle) -> Model:
    """A model's deployment (``Model_<name>``), scoring and administration alike."""
    return cast(Model, Forwarded(named(handle), Model))


def remote_bandit(handle: DeploymentHandle) -> Bandit:
    return cast(Bandit, _RemoteBandit(named(handle, "bandit router"), Bandit))


class RemoteWriter:
    def __init__(self, handle: DeploymentHandle, deadline_s: float | None = None) -> None:
        # "the email writer is unavailable", not "ActorDiedError"; a frozen writer enforces no
        # deadline of its own, so the caller stops waiting after ``deadline_s`` (504).
        # Ray actor calls, not Serve's gRPC transport (the default with
        # RAY_SERVE_THROUGHPUT_OPTIMIZED): over gRPC a unary call learns that the replica
        # accepted it only with its answer, so a call in flight on a writer that dies looks
        # never accepted and Serve sends it again to the fresh, cold replica, where it waits
        # out the whole deadline (a late 504). An actor call is accepted first, so its
        # replica's death reaches the caller at once as ActorDiedError: our prompt 503.
        self._h = named(handle.options(_by_reference=True), "email writer", deadline_s)
        self._stream = self._h.options(stream=True)

    async def write(
        self,
        facts: dict[str, Any],
        action: str,
        scores: dict[str, Any],
        max_tokens: int | None = None,
        temperature: float | None = None,
        adapter: str | None = None,
    ) -> dict[str, Any]:
        return await self._h.write.remote(facts, action, scores, max_tokens, temperature, adapter)

    async def complete(self, request: Any) -> Any:
        return await self._h.complete.remote(request)

    def complete_stream(self, request: Any) -> AsyncIterator[str]:
        return self._stream.complete_stream.remote(request)

    async def models(self) -> Any:
        return await self._h.models.remote()

    async def ready(self) -> bool:
        return await self._h.ready.remote()
