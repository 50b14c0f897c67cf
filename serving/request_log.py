"""Request ids and one structured JSON log line per HTTP request.

``RequestLog`` is pure ASGI (no ``BaseHTTPMiddleware``: see ``serving.http``). Per request
it takes the caller's ``X-Request-ID`` (printable ASCII, at most 128 characters) or makes
one, echoes it on the answer, and, when the request log is on (``configure``), writes one
JSON line: time, request id, method, route (the template, as in the metrics), status,
latency, and what the dataplane noted (customers, model versions, the v2 model). Never the
body, feature values, headers or tokens. When it is off nothing is collected or
formatted: the only per-request work is the id.

The line is written straight to its stream, not through ``logging``: a record, its
handlers and Ray's record factory (installed in every Ray worker) cost ~7% of a 1-id
request's CPU in a Serve replica, for a line whose shape never changes.

The dataplane notes its fields through :func:`note` (a context variable, so neither
the dataplane nor the components see HTTP).
"""

from __future__ import annotations

import asyncio
import contextvars
import os
import sys
import time
from typing import Any

import orjson

HEADER = b"x-request-id"
MAX_ID = 128
CLIENT_CLOSED = 499

_stream: Any = None  # where lines go while the log is on (None: off)
_last: Any = None  # the stream last given, kept while the log is off
_fields: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "reengage_request", default=None
)


def note(**fields: Any) -> None:
    """Add fields to the current request's log line (no-op outside a logged request)."""
    current = _fields.get()
    if current is not None:
        current.update(fields)


def new_id() -> str:
    return os.urandom(8).hex()


def _valid(raw: bytes) -> bool:
    return 0 < len(raw) <= MAX_ID and all(33 <= b < 127 for b in raw)


def configure(enabled: bool = True, stream: Any = None) -> None:
    """Turn the request log on or off; ``stream`` (any text stream) is where lines go.

    A Serve replica passes its own file in Serve's log directory
    (``serving.deployments.ingress``). Without one, the stream set before, else the
    process's own stderr (``sys.__stderr__``), not ``sys.stderr``: inside a Serve replica
    that is Ray's redirect into the replica logger at INFO, which ``server.log_level``
    (WARNING) drops.
    """
    global _stream, _last
    if stream is not None:
        _last = stream
    _stream = (_last or sys.__stderr__ or sys.stderr) if enabled else None


def enabled() -> bool:
    return _stream is not None


def write(fields: dict[str, Any]) -> None:
    """One JSON line: ``ts``, ``level``, ``msg``, then ``fields``."""
    stream = _stream
    if stream is not None:
        doc = {"ts": round(time.time(), 6), "level": "INFO", "msg": "request", **fields}
        stream.write(orjson.dumps(doc, default=str, option=orjson.OPT_APPEND_NEWLINE).decode())
        stream.flush()


class RequestLog:
    """Pure ASGI: request id in, request id out, one JSON line per request when enabled.

    ``echo=False`` inside a Serve replica: Serve's own ``RequestIdMiddleware`` (in front of
    this app) already puts ``x-request-id`` in the request (the caller's, or a new one) and
    echoes it; here it is only read, so the log line and the answer carry the same id.
    """

    def __init__(self, app: Any, echo: bool = True) -> None:
        self.app, self.echo = app, echo

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
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
        if not self.echo:
            if _stream is not None:
                await self._logged(scope, receive, send, echo, send_header=False)
            else:
                await self.app(scope, receive, send)
            return
        if _stream is None:

            async def send_id(message: dict[str, Any]) -> None:
                if message["type"] == "http.response.start":
                    message["headers"] = [*message.get("headers", ()), echo]
                await send(message)

            await self.app(scope, receive, send_id)
            return
        await self._logged(scope, receive, send, echo)

    async def _logged(
        self,
        scope: dict[str, Any],
        receive: Any,
        send: Any,
        echo: tuple[bytes, bytes],
        send_header: bool = True,
    ) -> None:
        start = time.perf_counter()
        status = 500
        fields: dict[str, Any] = {}
        token = _fields.set(fields)

        async def send_id(message: dict[str, Any]) -> None:
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
            _fields.reset(token)
            route = scope.get("route")
            line = {
                "request_id": echo[1].decode(),
                "method": scope.get("method"),
                "route": getattr(route, "path", None) or "unmatched",
                "status": status,
                "latency_ms": round(1e3 * (time.perf_counter() - start), 3),
                **fields,
            }
            write(line)
