"""The FastAPI application factory: routers plus the one error handler.

Built from a DataPlane, so the same app runs inside the Ray Serve ingress
(``__serve_build_asgi_app__``) or on plain uvicorn / TestClient for tests and for
measuring what Serve itself costs.
"""

from __future__ import annotations

import logging
import time

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from pydantic import ValidationError

from serving import metrics
from serving.dataplane import SERVER_VERSION, DataPlane
from serving.errors import InvalidRequest, MalformedBody, ReengageError, status_and_body

log = logging.getLogger("reengage")


def json_response(content: object, status_code: int = 200, headers: dict[str, str] | None = None) -> Response:
    body = orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY)
    return Response(body, status_code=status_code, media_type="application/json", headers=headers)


def validation_error(exc: ValidationError | RequestValidationError) -> ReengageError:
    """The first pydantic error as one of ours, naming the field (``customer_ids[3]``)."""
    err = exc.errors()[0]
    loc = [p for p in err.get("loc", ()) if p not in ("body",)]
    field = "".join(f"[{p}]" if isinstance(p, int) else (f".{p}" if i else str(p)) for i, p in enumerate(loc)) or None
    if err.get("type") == "json_invalid":
        return MalformedBody(f"body is not valid JSON: {err.get('msg')}")
    message = err.get("msg", "invalid value")
    if err.get("type") == "missing":
        message = "field required"
    elif err.get("type") == "extra_forbidden":
        message = "unknown field"
    return InvalidRequest(message, field=field)


def error_response(request: Request, status: int, body: dict) -> Response:
    """DESIGN.md's error body; on /v2 routes the Open Inference Protocol's ``{"error": str}``
    (what tritonclient parses), with our type and field kept beside it."""
    if request.url.path.startswith("/v2"):
        err = body["error"]
        text = err["message"] if not err.get("field") else f"{err['field']}: {err['message']}"
        body = {"error": text, "error_type": err["type"], "field": err.get("field")}
    return json_response(body, status)


def create_app(dataplane: DataPlane) -> FastAPI:
    from serving.routes import openai, rest_v1, rest_v2

    app = FastAPI(title="reengage", version=SERVER_VERSION, default_response_class=Response)
    app.state.dataplane = dataplane
    app.include_router(rest_v1.router(dataplane))
    app.include_router(rest_v2.router(dataplane))
    app.include_router(openai.router(dataplane))

    @app.middleware("http")
    async def _measure(request: Request, call_next):  # type: ignore[no-untyped-def]
        start = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        metrics.request(getattr(route, "path", "unmatched"), response.status_code, 1e3 * (time.perf_counter() - start))
        return response

    @app.exception_handler(ReengageError)
    async def _ours(request: Request, exc: ReengageError) -> Response:
        return error_response(request, exc.status_code, exc.to_body())

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
        return error_response(request, status, body)

    return app
