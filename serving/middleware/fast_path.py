"""``FastPath``: ``POST /v1/score`` answered by its own endpoint without FastAPI's
per-request machinery.

A one-customer score spends about as long in FastAPI's request handling (exception
middleware, exit stack, router matching over every route, ``request_response`` and
dependency solving) as in the models (docs/benchmarks.md). This innermost middleware
matches that one route and calls the very endpoint function FastAPI registered, with the
app's own exception handlers; everything else goes on to FastAPI. So the route's OpenAPI
schema, its code and its error answers stay FastAPI's, and
``tests/serving/test_fast_path.py`` checks that both ways answer byte for byte alike. The
middlewares outside (request id and log, drain, metrics, auth) see it as any other route:
the scope carries the route, as Starlette's router sets it.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable

from fastapi import FastAPI
from fastapi.routing import APIRoute, APIRouter
from starlette.requests import Request
from starlette.responses import Response

from serving.middleware.asgi import ASGIApp, Receive, Scope, Send, route_path

Endpoint = Callable[[Request], Awaitable[Response]]


def find_route(router: APIRouter, method: str, path: str) -> APIRoute:
    """The router's own route object (what Starlette's router puts in the scope)."""
    return next(
        r
        for r in router.routes
        if isinstance(r, APIRoute) and r.path == path and method in (r.methods or ())
    )


class FastPath:
    """Pure ASGI: ``method path`` goes straight to ``endpoint``; the rest to ``app``."""

    def __init__(self, app: ASGIApp, fastapi: FastAPI, route: APIRoute) -> None:
        self.app, self.fastapi, self.route = app, fastapi, route
        [self.method] = sorted(route.methods or ())
        self.path = route.path
        self.endpoint: Endpoint = route.endpoint

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] != self.method
            or route_path(scope) != self.path
        ):
            await self.app(scope, receive, send)
            return
        scope["route"] = self.route  # as the router sets it: metrics and the log name the template
        request = Request(scope, receive)
        try:
            response = await self.endpoint(request)
        except Exception as exc:
            response = await self._handled(request, exc)
        await response(scope, receive, send)

    async def _handled(self, request: Request, exc: Exception) -> Response:
        """The app's handler for the exception's nearest class, as Starlette picks it; the
        ``Exception`` handler (ours: a logged 500 in our error body) catches the rest."""
        handlers = self.fastapi.exception_handlers
        for cls in type(exc).__mro__:
            handler = handlers.get(cls)
            if handler is not None:
                answer = handler(request, exc)
                return await answer if inspect.isawaitable(answer) else answer
        raise exc
