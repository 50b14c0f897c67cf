"""``RequestMetrics``: route, status and latency of every request, and fixed answer headers.

It only wraps ``send`` to read the status and add the headers; the route label is the
route template the router (or the fast path, or a refusal) puts in the scope.
"""

from __future__ import annotations

import asyncio
import time

from serving import metrics
from serving.middleware.asgi import ASGIApp, Message, Receive, Scope, Send

CLIENT_CLOSED = 499  # nginx's "client closed request": counted apart from server errors


class RequestMetrics:
    """Records route, status and latency per request; adds fixed response headers."""

    def __init__(self, app: ASGIApp, headers: dict[str, str] | None = None) -> None:
        self.app = app
        self.headers = [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_with_headers(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                if self.headers:
                    message["headers"] = [*message.get("headers", ()), *self.headers]
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        except asyncio.CancelledError:  # the client went away mid-request: not a server error
            status = CLIENT_CLOSED if status == 500 else status
            raise
        finally:
            route = scope.get("route")
            metrics.request(
                getattr(route, "path", "unmatched"), status, 1e3 * (time.perf_counter() - start)
            )
