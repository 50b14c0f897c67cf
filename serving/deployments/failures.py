"""A component's replica failing under a handle call, answered as our error naming it.

When the replica a handle call went to dies mid-request (``kill -9``, out of memory, a
node lost), Ray raises ``ActorDiedError`` / ``ActorUnavailableError`` in the caller; a
deployment that cannot deploy raises ``DeploymentUnavailableError``; a full one,
``BackPressureError``. The mapper would answer each as a 503 naming Ray's class, which
tells a client nothing. ``named(handle, "email writer")`` wraps a handle so that these
become ``DependencyUnavailable`` (503) / ``Overloaded`` (503 + Retry-After) naming the
component and what the client can do. Errors the component raised itself (ours, carried
in ``RayTaskError``) pass through unchanged.

A deadline is the caller's too: a component whose process is frozen (``SIGSTOP``, a
stalled GPU) enforces no timeout of its own, so ``named(..., deadline_s=...)`` gives up
waiting after that long with a 504 naming the component (the request is cancelled).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable
from typing import Any

from ray.exceptions import RayActorError
from ray.serve.exceptions import BackPressureError, DeploymentUnavailableError
from ray.serve.handle import DeploymentHandle, DeploymentResponseGenerator

from serving.errors import DependencyUnavailable, Overloaded, ReengageError, Timeout

# Serve names replicas' deployments like this; the component a client reads in the error
COMPONENTS = {
    "EmailWriter": "email writer",
    "FeatureLookup": "feature lookup",
    "BanditRouter": "bandit router",
}


def component_name(handle: DeploymentHandle) -> str:
    name = handle.deployment_name
    return COMPONENTS.get(name) or (
        f"model {name.removeprefix('Model_')}" if name.startswith("Model_") else name
    )


def as_ours(component: str, exc: BaseException) -> ReengageError | None:
    """Our error for Ray's failure of ``component``'s replicas, or None for any other error."""
    kind = type(exc).__name__
    if isinstance(exc, RayActorError):
        return DependencyUnavailable(
            f"the {component} is unavailable: the replica serving this request died or became "
            f"unreachable ({kind}); Serve replaces it, retry shortly"
        )
    if isinstance(exc, DeploymentUnavailableError):
        return DependencyUnavailable(
            f"the {component} is unavailable: its deployment failed to start ({kind})"
        )
    if isinstance(exc, BackPressureError):
        return Overloaded(
            f"the {component} is at capacity ({kind}): retry shortly", retry_after_s=1.0
        )
    return None


class NamedHandle:
    """A DeploymentHandle whose calls fail as our errors naming ``component``."""

    def __init__(
        self,
        handle: DeploymentHandle,
        component: str | None = None,
        deadline_s: float | None = None,
    ) -> None:
        self._h = handle
        self.component = component or component_name(handle)
        self.deadline_s = deadline_s

    def options(self, **kwargs: Any) -> "NamedHandle":
        return NamedHandle(self._h.options(**kwargs), self.component, self.deadline_s)

    def __getattr__(self, method: str) -> "_Method":
        return _Method(getattr(self._h, method), self.component, self.deadline_s)


class _Method:
    def __init__(self, method: Any, component: str, deadline_s: float | None) -> None:
        self._m, self.component, self.deadline_s = method, component, deadline_s

    def remote(self, *args: Any, **kwargs: Any) -> Any:
        response = self._m.remote(*args, **kwargs)
        if isinstance(response, DeploymentResponseGenerator):
            return _stream(self.component, response)
        return _result(self.component, response, self.deadline_s)


async def _result(component: str, response: Awaitable[Any], deadline_s: float | None = None) -> Any:
    try:
        return (
            await asyncio.wait_for(response, deadline_s)
            if deadline_s is not None
            else await response
        )
    except TimeoutError:
        raise Timeout(
            f"the {component} did not answer within {deadline_s:g} s (the caller's deadline)"
        ) from None
    except Exception as exc:
        ours = as_ours(component, exc)
        if ours is None:
            raise
        raise ours from exc


async def _stream(component: str, response: AsyncIterator[Any]) -> AsyncIterator[Any]:
    try:
        async for item in response:
            yield item
    except Exception as exc:
        ours = as_ours(component, exc)
        if ours is None:
            raise
        raise ours from exc


def named(
    handle: DeploymentHandle, component: str | None = None, deadline_s: float | None = None
) -> NamedHandle:
    return NamedHandle(handle, component, deadline_s)
