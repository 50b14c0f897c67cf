"""Response encoding shared by every route module: orjson bodies and the error body."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from pydantic import ValidationError

from serving.codecs.columnar import ARROW_STREAM, arrow_bytes, json_bytes
from serving.errors import InvalidRequest, MalformedBody, ReengageError


def json_response(
    content: object, status_code: int = 200, headers: dict[str, str] | None = None
) -> Response:
    """orjson with numpy arrays encoded natively (no ``tolist``), NaN as null."""
    body = orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY)
    return Response(body, status_code=status_code, media_type="application/json", headers=headers)


def validation_error(exc: ValidationError | RequestValidationError) -> ReengageError:
    """The first pydantic error as one of ours, naming the field (``customer_ids[3]``)."""
    err = exc.errors()[0]
    loc = [p for p in err.get("loc", ()) if p not in ("body", "query", "path")]
    field = (
        "".join(
            f"[{p}]" if isinstance(p, int) else (f".{p}" if i else str(p))
            for i, p in enumerate(loc)
        )
        or None
    )
    if err.get("type") == "json_invalid":
        return MalformedBody(f"body is not valid JSON: {err.get('msg')}")
    message = err.get("msg", "invalid value")
    if err.get("type") == "missing":
        message = "field required"
    elif err.get("type") == "extra_forbidden":
        message = "unknown field"
    return InvalidRequest(message, field=field)


def error_response(
    request: Request, status: int, body: dict[str, Any], headers: dict[str, str] | None = None
) -> Response:
    """The error body of docs/api.md ("Errors"); on /v2 routes the Open Inference Protocol's
    ``{"error": str}`` (what tritonclient parses), with our type and field kept beside it."""
    if request.url.path.startswith("/v2"):
        err = body["error"]
        text = err["message"] if not err.get("field") else f"{err['field']}: {err['message']}"
        body = {"error": text, "error_type": err["type"], "field": err.get("field")}
    return json_response(body, status, headers)


def columnar_response(request: Request, columns: dict[str, Any]) -> Response:
    """The columnar answer as JSON, or as an Arrow IPC stream when the client accepts it
    (``Accept: application/vnd.apache.arrow.stream``); both without per-row objects."""
    if ARROW_STREAM in request.headers.get("accept", ""):
        return Response(arrow_bytes(columns), media_type=ARROW_STREAM)
    return Response(json_bytes(columns), media_type="application/json")
