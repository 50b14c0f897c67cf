"""What every middleware here shares: the ASGI callables' types (the spec's, as Starlette
names them, without importing Starlette where nothing else needs it) and scope helpers."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def route_path(scope: Scope) -> str:
    """The path the router matches (``root_path`` stripped, as Starlette does)."""
    path: str = scope["path"]
    root = scope.get("root_path")
    if root and path.startswith(root) and path != root and path[len(root)] == "/":
        return path[len(root) :]
    return path


def header(scope: Scope, name: bytes) -> bytes | None:
    """The first value of header ``name`` (lower-case bytes, as ASGI gives them)."""
    for key, value in scope.get("headers", ()):
        if key == name:
            found: bytes = value
            return found
    return None
