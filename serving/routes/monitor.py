"""``GET /v1/monitor``: drift, actions and segment contact rates of the whole application
(the admin route group: token-protected by default), and each version's model card
(metadata group). Thin: parse, call the dataplane, encode."""

from __future__ import annotations

from datetime import datetime, timezone

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response

from serving.dataplane import DataPlane
from serving.errors import InvalidRequest
from serving.protocol.monitor import ModelCard, MonitorReport
from serving.protocol.openapi import error_responses
from serving.protocol.v1 import ErrorResponse
from serving.protocol.v2 import OIPErrorResponse
from serving.routes.responses import json_response

_ERRORS = error_responses(ErrorResponse, 422, 503)


def parse_since(text: str) -> float:
    """An ISO 8601 time (``Z`` or an offset; none means UTC) as epoch seconds."""
    try:
        t = datetime.fromisoformat(text.strip())
    except ValueError:
        raise InvalidRequest(
            "since must be an ISO 8601 time, e.g. 2026-01-31T12:00:00Z", field="since"
        ) from None
    return (t if t.tzinfo else t.replace(tzinfo=timezone.utc)).timestamp()


def parse_window(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise InvalidRequest(
            "window_s must be a whole number of seconds", field="window_s"
        ) from None
    if n < 1:
        raise InvalidRequest("window_s must be at least 1", field="window_s")
    return n


def router(dataplane: DataPlane) -> APIRouter:
    r = APIRouter(tags=["admin"], default_response_class=JSONResponse)

    @r.get(
        "/v1/monitor",
        response_model=MonitorReport,
        responses=_ERRORS,
        summary="Feature and score drift per model version, actions, contact rates by segment",
    )
    async def monitor(since: str | None = None, window_s: str | None = None) -> Response:
        """Window: ``since`` (ISO time) to now, or the last ``window_s`` seconds (default
        ``monitor.window_s``), at 1 s granularity."""
        if since is not None and window_s is not None:
            raise InvalidRequest("give since or window_s, not both", field="window_s")
        start = parse_since(since) if since is not None else None
        n = parse_window(window_s) if window_s is not None else None
        return json_response((await dataplane.monitoring.report(start, n)).to_json())

    @r.get(
        "/v2/models/{model_name}/versions/{model_version}/card",
        tags=["metadata"],
        response_model=ModelCard,
        responses=error_responses(OIPErrorResponse, 404, 503),
        summary="The version's model card (Markdown in text, written by the build)",
    )
    async def card(model_name: str, model_version: str) -> Response:
        text = await dataplane.kserve.model_card(model_name, model_version)
        return json_response(
            {"name": model_name, "version": model_version, "format": "markdown", "text": text}
        )

    return r
