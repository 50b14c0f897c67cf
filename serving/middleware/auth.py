"""``AuthMiddleware``: the HTTP check of every request against its route group.

On a route of an open group it costs one dict lookup (the path's decision, cached per
path; no header is read); on a protected group it hashes the bearer token and compares it
in constant time. A refusal is answered here, in the error body the one mapper gives
(``errors.status_and_body``; the Open Inference Protocol's shape under ``/v2``, as
``routes.responses.error_response`` writes it), with ``WWW-Authenticate``. The refused
route's template is put in the scope, so request metrics count it under its route.

The token never reaches a log line: refusals name the group and the token's *name*.

Other ASGI scopes: ``lifespan`` passes; a ``websocket`` is refused (closed before its
handshake completes, which the server answers as HTTP 403) unless the app declares a
WebSocket route for its path, and then it is checked like an HTTP request of the same
route group. Any other scope type is refused (an exception, as the ASGI spec asks). An
endpoint added tomorrow for another protocol is therefore closed until it is declared.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from serving.audit import AuditLog
from serving.errors import ReengageError, status_and_body
from serving.middleware.asgi import ASGIApp, Receive, Scope, Send, header, route_path
from serving.security.client_source import ClientSource
from serving.security.groups import classify
from serving.security.openapi import declare_security
from serving.security.shared_tokens import Authenticator
from serving.security.tokens import ANONYMOUS

_REALM = 'Bearer realm="reengage"'
_UNSEEN: tuple[str, Any] = ("", None)  # a path not checked yet (compared by identity)
_CACHE_MAX = 4096
POLICY_VIOLATION = 1008  # the WebSocket close code for a refused connection (RFC 6455)


class AuthMiddleware:
    """Checks each request against its route group (``groups.classify``)."""

    def __init__(
        self,
        app: ASGIApp,
        authenticator: Authenticator,
        audit: AuditLog | None = None,
        declared: Callable[[Scope], bool] | None = None,
        source: Callable[[Scope], str] = ClientSource(()),
    ) -> None:
        self.app = app
        self.source = source  # who sent a refused call: its audit lines' rate
        self.declared = declared or (
            lambda scope: False
        )  # a route of the app takes this non-HTTP scope
        self.auth = authenticator
        self.protected = authenticator.protected
        self.audit = audit
        # path -> None (let it through) or (group, route label) to check; bounded
        self._checks: dict[str, tuple[str, Any] | None] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._other(scope, receive, send)
            return
        path = route_path(scope) if scope.get("root_path") else scope["path"]
        hit = self._checks.get(path, _UNSEEN)  # a path seen before: one dict lookup
        if hit is _UNSEEN:
            hit = self._check_for(path)
        if hit is None:
            await self.app(scope, receive, send)  # open (or outside our API: the router answers)
            return
        group, route = hit
        authorization = header(scope, b"authorization")
        if group not in self.protected:  # admin left open: still name the caller when a token came
            principal = self.auth.identify(authorization)
            if principal is not None:
                scope["auth"] = principal
            await self.app(scope, receive, send)
            return
        try:
            scope["auth"] = self.auth.check(group, authorization)
        except ReengageError as exc:
            if route is not None:
                scope["route"] = route  # request metrics count the refusal under its route
            if group == "admin" and self.audit is not None:
                self._audit_refusal(self.audit, scope, exc)
            await self._refuse(scope, send, exc)
            return
        await self.app(scope, receive, send)

    async def _other(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Lifespan passes; a WebSocket needs a declared route and its group's token; the rest is
        refused."""
        kind = scope["type"]
        if kind == "lifespan":
            await self.app(scope, receive, send)
            return
        if kind != "websocket":
            raise RuntimeError(f"ASGI scope type {kind!r} is not served")
        if not self.declared(scope):
            await self._close(receive, send, "no WebSocket route here")
            return
        path = route_path(scope)
        hit = classify(path)
        if hit is not None and hit[0] in self.protected:
            try:
                scope["auth"] = self.auth.check(hit[0], header(scope, b"authorization"))
            except ReengageError as exc:
                await self._close(receive, send, f"{exc.status_code} {exc.error_type}")
                return
        await self.app(scope, receive, send)

    @staticmethod
    async def _close(receive: Receive, send: Send, reason: str) -> None:
        """Refuse a WebSocket before its handshake completes (the server answers HTTP 403)."""
        message = await receive()
        if message.get("type") == "websocket.connect":
            await send({"type": "websocket.close", "code": POLICY_VIOLATION, "reason": reason})

    def _check_for(self, path: str) -> tuple[str, Any] | None:
        hit = classify(path)
        if hit is not None and hit[0] not in self.protected and hit[0] != "admin":
            hit = None  # an open group; an open admin group still names the caller
        if len(self._checks) < _CACHE_MAX:
            self._checks[path] = hit
        return hit

    async def _refuse(self, scope: Scope, send: Send, exc: ReengageError) -> None:
        status, body = status_and_body(exc)
        if route_path(scope).startswith("/v2"):  # tritonclient parses {"error": str}
            err = body["error"]
            text = err["message"] if not err.get("field") else f"{err['field']}: {err['message']}"
            body = {"error": text, "error_type": err["type"], "field": err.get("field")}
        payload = orjson.dumps(body)
        challenge = _REALM if status == 401 else _REALM + ', error="insufficient_scope"'
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(payload)).encode()),
                    (b"www-authenticate", challenge.encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": payload})

    def _audit_refusal(self, audit: AuditLog, scope: Scope, exc: ReengageError) -> None:
        """Off the event loop and within the per-source rate (``AuditLog.refused``)."""
        authorization = header(scope, b"authorization")

        def actor() -> str:
            principal = self.auth.identify(authorization) if exc.status_code == 403 else None
            return principal.name if principal is not None else ANONYMOUS

        audit.refused(
            f"{scope.get('method', 'GET')} {route_path(scope)[:256]}",
            actor=actor,
            source=self.source(scope),
            message=f"{exc.status_code} {exc.error_type}: {exc.message}",
        )


def declares(app: Any, scope: Scope) -> bool:
    """Whether one of ``app``'s routes fully matches this (non-HTTP) scope: Starlette's own
    matching (``route.matches``; an HTTP route never matches a WebSocket scope)."""
    for route in getattr(app, "routes", ()):
        try:
            match, _ = route.matches(scope)
        except Exception:  # a route kind that cannot match this scope
            continue
        if getattr(match, "value", 0) == 2:  # starlette.routing.Match.FULL
            return True
    return False


def install(
    app: Any,
    authenticator: Authenticator,
    audit: AuditLog | None = None,
    source: Callable[[Scope], str] = ClientSource(()),
) -> None:
    """Register the middleware on a FastAPI ``app`` and declare the scheme in its OpenAPI."""
    app.add_middleware(
        AuthMiddleware,
        authenticator=authenticator,
        audit=audit,
        declared=lambda scope: declares(app, scope),
        source=source,
    )
    build_schema = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            schema: dict[str, Any] = app.openapi_schema
            return schema
        return declare_security(build_schema(), authenticator.protected)

    app.openapi = openapi
