"""Draining: a stopping server finishes what it took and takes nothing new.

``Drain`` is pure ASGI (see ``serving.http`` on why not ``BaseHTTPMiddleware``). It counts
the requests in flight; once :data:`STATE` is draining, a new request gets a 503
``draining`` error (our JSON body, ``Retry-After: 1``, ``Connection: close`` so the client
reconnects, by then elsewhere) and readiness answers 503, while requests already inside
run to the end. Who sets the state: ``serving.deployments.drain_signal`` (``reengage
stop``) in a Serve replica. Health and liveness still answer.
"""

from __future__ import annotations

from typing import Any

import orjson

READY_PATH = "/v2/health/ready"
LIVE_PATHS = frozenset({"/v2/health/live", "/-/healthz"})


class DrainState:
    """Whether this process drains, and how many HTTP requests it is running."""

    def __init__(self) -> None:
        self.draining = False
        self.inflight = 0  # changed on the event loop only; other threads just read it

    def start(self) -> None:
        self.draining = True


STATE = DrainState()

_BODY = orjson.dumps(
    {
        "error": {
            "type": "draining",
            "field": None,
            "message": "the server is stopping; retry (another instance will answer)",
        }
    }
)
_HEADERS = [
    (b"content-type", b"application/json"),
    (b"retry-after", b"1"),
    (b"connection", b"close"),
    (b"content-length", str(len(_BODY)).encode()),
]
_NOT_READY = orjson.dumps({"ready": False})


class Drain:
    """Pure ASGI: in-flight count; 503 for new requests while draining."""

    def __init__(self, app: Any, state: DrainState = STATE) -> None:
        self.app, self.state = app, state

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = self.state
        if state.draining and scope["path"] not in LIVE_PATHS:
            body = _NOT_READY if scope["path"] == READY_PATH else _BODY
            headers = (
                _HEADERS
                if body is _BODY
                else [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ]
            )
            await send({"type": "http.response.start", "status": 503, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        state.inflight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            state.inflight -= 1
