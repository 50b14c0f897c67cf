"""Local or remote: the dataplane calls services the same way in either topology.

A local service is an object with async methods, awaited in-process. A remote one is a
DeploymentHandle; ``Remote`` gives it the same awaitable-method shape, with the
handle's options configured once and cached (as Ray's OpenAiIngress does).
"""

from __future__ import annotations

from typing import Any, Awaitable, Callable


class Remote:
    def __init__(self, handle: Any) -> None:
        self._handle = handle
        self._methods: dict[str, Callable[..., Awaitable[Any]]] = {}

    def __getattr__(self, name: str) -> Callable[..., Awaitable[Any]]:
        if name.startswith("_"):
            raise AttributeError(name)
        method = self._methods.get(name)
        if method is None:
            bound = getattr(self._handle, name)

            async def method(*args: Any, **kwargs: Any) -> Any:
                return await bound.remote(*args, **kwargs)

            self._methods[name] = method
        return method


    def stream(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """An async iterator over a streaming method's items (``stream=True`` handle)."""
        return getattr(self._handle.options(stream=True), name).remote(*args, **kwargs)


def stream(service: Any, name: str, *args: Any, **kwargs: Any) -> Any:
    """Iterate a service's async-generator method, local or remote."""
    if isinstance(service, Remote):
        return service.stream(name, *args, **kwargs)
    return getattr(service, name)(*args, **kwargs)


def as_service(obj: Any) -> Any:
    """A DeploymentHandle becomes a ``Remote``; anything else is used as it is."""
    from ray.serve.handle import DeploymentHandle

    return Remote(obj) if isinstance(obj, DeploymentHandle) else obj
