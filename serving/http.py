"""The FastAPI application factory: routers, the middleware stack, the error handlers.

Built from a DataPlane, so the same app runs inside the Ray Serve ingress
(``__serve_build_asgi_app__``) or on plain uvicorn / TestClient for tests and for
measuring what Serve itself costs.

The middleware is plain ASGI (``serving.middleware``: why, and what counts as middleware),
outermost first: ``RequestLog``, ``Drain``, ``RequestMetrics``, ``AuthMiddleware`` and
``FastPath``.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from serving import request_log
from serving.audit import audit_log
from serving.dataplane import DataPlane
from serving.errors import MAPPED_ERRORS, error_body, retry_after, status_and_body
from serving.middleware import auth
from serving.middleware.drain import Drain
from serving.middleware.fast_path import FastPath, find_route
from serving.middleware.metrics import RequestMetrics
from serving.middleware.request_log import RequestLog
from serving.planes.kserve import SERVER_VERSION
from serving.routes import admin, monitor, openai, privacy, rest_v1, rest_v2
from serving.routes.responses import error_response, validation_error
from serving.security import Authenticator
from serving.security.client_source import ClientSource

log = logging.getLogger("reengage")


def create_app(
    dataplane: DataPlane, headers: dict[str, str] | None = None, echo_request_id: bool = True
) -> FastAPI:
    """The whole HTTP surface; ``headers`` are added to every answer (e.g. the replica)."""
    telemetry = dataplane.settings.server.fastapi_telemetry
    app = FastAPI(
        title="reengage",
        version=SERVER_VERSION,
        default_response_class=Response,
        telemetry=None if telemetry else {"tracing": False, "metrics": False, "logs": False},
    )
    app.state.dataplane = dataplane
    v1 = rest_v1.router(dataplane)
    for router in (
        v1,
        rest_v2.router(dataplane),
        openai.router(dataplane),
        admin.router(dataplane),
        privacy.router(dataplane),
        monitor.router(dataplane),
    ):
        app.include_router(router)
    _hot_routes_first(app)
    # innermost: /v1/score without FastAPI's per-request work; not under FastAPI's telemetry,
    # whose spans take the route from FastAPI's router
    if dataplane.settings.server.fast_path and not telemetry:
        app.add_middleware(FastPath, fastapi=app, route=find_route(v1, "POST", "/v1/score"))
    app.state.authenticator = Authenticator(dataplane.settings)  # a version pin asks who calls
    auth.install(
        app,
        app.state.authenticator,
        audit_log(dataplane.settings),
        ClientSource(dataplane.settings.auth.trusted_proxies),
    )
    app.add_middleware(RequestMetrics, headers=headers)
    app.add_middleware(Drain)  # a stopping replica: 503 for new requests, in-flight ones finish
    request_log.configure(dataplane.settings.server.request_log)
    # outermost: X-Request-ID and the JSON line on every answer (in Serve, Serve echoes the id)
    app.add_middleware(RequestLog, echo=echo_request_id)
    _add_error_handlers(app)
    return app


def _hot_routes_first(app: FastAPI) -> None:
    """Our routes before FastAPI's docs pages: Starlette, and Serve for its per-request route
    label, match routes in list order, so /v1/score is found first.
    The docs paths overlap none of ours, so no request changes route."""
    docs = {app.openapi_url, app.docs_url, app.redoc_url, app.swagger_ui_oauth2_redirect_url}
    app.router.routes.sort(key=lambda route: getattr(route, "path", None) in docs)  # stable


def _add_error_handlers(app: FastAPI) -> None:
    async def _mapped(request: Request, exc: Exception) -> Response:
        status, body = status_and_body(exc)
        return error_response(request, status, body, retry_after(exc))

    for error in MAPPED_ERRORS:  # ours and the feature store's: expected states, no traceback
        app.add_exception_handler(error, _mapped)

    @app.exception_handler(StarletteHTTPException)
    async def _routing(request: Request, exc: StarletteHTTPException) -> Response:
        """Starlette's own answers (no such route, a method the route lacks) as our error, not
        ``{"detail": ...}``; ``Allow`` is kept on a 405."""
        kind = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        message = (
            f"no route {request.method} {request.url.path}"
            if exc.status_code == 404
            else f"{request.method} {request.url.path}: {exc.detail}"
        )
        return error_response(
            request, exc.status_code, error_body(kind, message), dict(exc.headers or {}) or None
        )

    @app.exception_handler(ValidationError)
    async def _pydantic(request: Request, exc: ValidationError) -> Response:
        err = validation_error(exc)
        return error_response(request, err.status_code, err.to_body())

    @app.exception_handler(RequestValidationError)
    async def _fastapi(request: Request, exc: RequestValidationError) -> Response:
        err = validation_error(exc)
        return error_response(request, err.status_code, err.to_body())

    @app.exception_handler(Exception)
    async def _anything(request: Request, exc: Exception) -> Response:
        status, body = status_and_body(exc)
        if status >= 500:
            log.exception("request failed", exc_info=exc)
        return error_response(request, status, body, retry_after(exc))
