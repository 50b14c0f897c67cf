"""``Drain``: a draining replica refuses new requests and lets those inside finish.

It counts the requests in flight (``serving.drain.STATE``); once the state is draining, a
new request gets a 503 ``draining`` error (our JSON body, ``Retry-After: 1``,
``Connection: close`` so the client reconnects, by then elsewhere) and readiness answers
503, while requests already inside run to the end. Health and liveness still answer.
"""

from __future__ import annotations

import orjson

from serving.drain import STATE, DrainState
from serving.middleware.asgi import ASGIApp, Receive, Scope, Send

READY_PATH = "/v2/health/ready"
LIVE_PATHS = frozenset({"/v2/health/live", "/-/healthz"})

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

    def __init__(self, app: ASGIApp, state: DrainState = STATE) -> None:
        self.app, self.state = app, state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
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
