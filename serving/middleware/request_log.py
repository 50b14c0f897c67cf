"""``RequestLog``: the request id in and out, and the request log's line per request.

Per request it takes the caller's ``X-Request-ID`` (printable ASCII, at most 128
characters) or makes one, echoes it on the answer, and, when the request log is on,
writes the request's line (``serving.request_log``: what the line holds and where it
goes). When the log is off the only per-request work is the id.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

from serving import request_log
from serving.middleware.asgi import ASGIApp, Message, Receive, Scope, Send

HEADER = b"x-request-id"
MAX_ID = 128
CLIENT_CLOSED = 499  # nginx's "client closed request", as ``RequestMetrics`` counts it


def new_id() -> str:
    return os.urandom(8).hex()


def _valid(raw: bytes) -> bool:
    return 0 < len(raw) <= MAX_ID and all(33 <= b < 127 for b in raw)


class RequestLog:
    """Pure ASGI: request id in, request id out, one JSON line per request when enabled.

    ``echo=False`` inside a Serve replica: Serve's own ``RequestIdMiddleware`` (in front of
    this app) already puts ``x-request-id`` in the request (the caller's, or a new one) and
    echoes it; here it is only read, so the log line and the answer carry the same id.
    """

    def __init__(self, app: ASGIApp, echo: bool = True) -> None:
        self.app, self.echo = app, echo

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = None
        for name, value in scope["headers"]:
            if name == HEADER:
                rid = value if _valid(value) else (None if self.echo else value[:MAX_ID])
                break
        rid = rid or new_id().encode()
        echo = (HEADER, rid)
        logged = request_log.enabled()
        if not self.echo:
            if logged:
                await self._logged(scope, receive, send, echo, send_header=False)
            else:
                await self.app(scope, receive, send)
            return
        if not logged:

            async def send_id(message: Message) -> None:
                if message["type"] == "http.response.start":
                    message["headers"] = [*message.get("headers", ()), echo]
                await send(message)

            await self.app(scope, receive, send_id)
            return
        await self._logged(scope, receive, send, echo)

    async def _logged(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        echo: tuple[bytes, bytes],
        send_header: bool = True,
    ) -> None:
        start = time.perf_counter()
        status = 500
        fields, token = request_log.collect()

        async def send_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                if send_header:
                    message["headers"] = [*message.get("headers", ()), echo]
            await send(message)

        try:
            await self.app(scope, receive, send_id)
        except asyncio.CancelledError:  # the client went away (as RequestMetrics counts it)
            status = CLIENT_CLOSED if status == 500 else status
            raise
        finally:
            request_log.release(token)
            route = scope.get("route")
            line: dict[str, Any] = {
                "request_id": echo[1].decode(),
                "method": scope.get("method"),
                "route": getattr(route, "path", None) or "unmatched",
                "status": status,
                "latency_ms": round(1e3 * (time.perf_counter() - start), 3),
                **fields,
            }
            request_log.write(line)
