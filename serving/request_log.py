"""Request ids and one structured JSON log line per HTTP request.

``RequestLog`` is pure ASGI (no ``BaseHTTPMiddleware``: see ``serving.http``). Per request
it takes the caller's ``X-Request-ID`` (printable ASCII, at most 128 characters) or makes
one, echoes it on the answer, and, when the ``reengage.requests`` logger is enabled at
INFO, writes one JSON line: time, request id, method, route (the template, as in the
metrics), status, latency, and what the dataplane noted (customers, model versions, the
v2 model). Never the body, feature values, headers or tokens. When the logger is off
nothing is collected or formatted: the only per-request work is the id.

The dataplane notes its fields through :func:`note` (a context variable, so neither
the dataplane nor the components see HTTP).
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import os
import sys
import time
from typing import Any

import orjson

LOGGER = "reengage.requests"
HEADER = b"x-request-id"
MAX_ID = 128
CLIENT_CLOSED = 499

log = logging.getLogger(LOGGER)
_fields: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar("reengage_request", default=None)


def note(**fields: Any) -> None:
    """Add fields to the current request's log line (no-op outside a logged request)."""
    current = _fields.get()
    if current is not None:
        current.update(fields)


def new_id() -> str:
    return os.urandom(8).hex()


def _valid(raw: bytes) -> bool:
    return 0 < len(raw) <= MAX_ID and all(33 <= b < 127 for b in raw)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``ts``, ``level``, ``msg`` and the record's ``fields``."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {"ts": round(record.created, 6), "level": record.levelname, "msg": record.getMessage()}
        fields = getattr(record, "fields", None)
        if fields:
            doc.update(fields)
        return orjson.dumps(doc, default=str).decode()


def configure(enabled: bool = True, stream: Any = None) -> logging.Logger:
    """The request logger: INFO with a JSON line handler, or off. Idempotent; does not
    propagate to the root logger.

    ``stream``: where the lines go; a Serve replica passes its own file in Serve's log
    directory (``serving.deployments.ingress``), replacing any earlier JSON handler. Without
    one, the process's own stderr (``sys.__stderr__``), not ``sys.stderr``: inside a Serve
    replica that is Ray's redirect into the replica logger at INFO, which
    ``server.log_level`` (WARNING) drops.
    """
    ours = [h for h in log.handlers if isinstance(h.formatter, JsonFormatter)]
    if stream is not None or not ours:
        for old in ours:
            log.removeHandler(old)
        handler = logging.StreamHandler(stream or sys.__stderr__ or sys.stderr)
        handler.setFormatter(JsonFormatter())
        log.addHandler(handler)
    log.propagate = False
    log.setLevel(logging.INFO if enabled else logging.WARNING)
    return log


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
            if log.isEnabledFor(logging.INFO):
                await self._logged(scope, receive, send, echo, send_header=False)
            else:
                await self.app(scope, receive, send)
            return
        if not log.isEnabledFor(logging.INFO):

            async def send_id(message: dict[str, Any]) -> None:
                if message["type"] == "http.response.start":
                    message["headers"] = [*message.get("headers", ()), echo]
                await send(message)

            await self.app(scope, receive, send_id)
            return
        await self._logged(scope, receive, send, echo)

    async def _logged(self, scope: dict[str, Any], receive: Any, send: Any, echo: tuple[bytes, bytes],
                      send_header: bool = True) -> None:
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
            line = {"request_id": echo[1].decode(), "method": scope.get("method"),
                    "route": getattr(route, "path", None) or "unmatched", "status": status,
                    "latency_ms": round(1e3 * (time.perf_counter() - start), 3), **fields}
            # a record made here, not log.info: no caller lookup (findCaller walks the stack)
            record = log.makeRecord(LOGGER, logging.INFO, __file__, 0, "request", (), None, extra={"fields": line})
            log.handle(record)

