"""Our JSON API: /v1/score, /v1/explain, /v1/reengage, /v1/feedback (thin: parse, call the
inference plane, encode).

``response_model`` and ``responses`` only declare the schema: the handlers return an
orjson ``Response``, which FastAPI passes through without validating it again.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from serving.dataplane import DataPlane
from serving.errors import InvalidRequest, PermissionDenied
from serving.protocol.openapi import error_responses, request_body
from serving.protocol.v1 import (
    ErrorResponse,
    ExplainRequest,
    ExplainResponse,
    FeedbackRequest,
    FeedbackResponse,
    ReengageRequest,
    ReengageResponse,
    ScoreRequest,
    ScoreResponse,
)
from serving.planes.scores import parse_ids
from serving.routes.responses import columnar_response, json_response
from serving.security.tokens import ADMIN, Principal


def router(dataplane: DataPlane) -> APIRouter:
    # JSONResponse: the media type the schema states; handlers build their own Response
    r = APIRouter(tags=["v1"], default_response_class=JSONResponse)
    inference = dataplane.inference

    @r.post(
        "/v1/score",
        response_model=ScoreResponse,
        summary="Score 1 to 10,000 customers",
        responses=error_responses(ErrorResponse, 400, 403, 404, 409, 422, 503, 504),
        openapi_extra=request_body(ScoreRequest),
    )
    async def score(request: Request) -> Response:
        # Parsed from raw bytes by pydantic's JSON parser: no intermediate dict of 10k ints.
        req = ScoreRequest.model_validate_json(await request.body())
        pin = request.headers.get("x-reengage-version")
        pins = _admin_pins(request, pin) if pin is not None else None
        result = await inference.score(parse_ids(req.customer_ids), req.explain, pins)
        return columnar_response(request, result.columns())

    @r.post(
        "/v1/explain",
        response_model=ExplainResponse,
        summary="Why each model scored 1 to 10,000 customers",
        responses=error_responses(ErrorResponse, 400, 404, 409, 422, 503, 504),
        openapi_extra=request_body(ExplainRequest),
    )
    async def explain(request: Request) -> Response:
        req = ExplainRequest.model_validate_json(await request.body())
        explained = await inference.explain(parse_ids(req.customer_ids), req.top_k)
        return json_response(explained.to_dict())

    @r.post(
        "/v1/reengage",
        response_model=ReengageResponse,
        summary="Score one customer and write the email",
        responses=error_responses(ErrorResponse, 400, 404, 409, 422, 503, 504),
        openapi_extra=request_body(ReengageRequest),
    )
    async def reengage(request: Request) -> Response:
        req = ReengageRequest.model_validate_json(await request.body())
        return json_response(
            await inference.reengage(
                req.customer_id,
                req.action,
                req.max_tokens,
                req.temperature,
                req.explain,
                req.adapter,
            )
        )

    @r.post(
        "/v1/feedback",
        response_model=FeedbackResponse,
        summary="Post the reward of a decision",
        responses=error_responses(ErrorResponse, 400, 404, 409, 422, 503, 504),
        openapi_extra=request_body(FeedbackRequest),
    )
    async def feedback(request: Request) -> Response:
        req = FeedbackRequest.model_validate_json(await request.body())
        feedback = await inference.feedback(req.decision_id, float(req.reward))
        return json_response(feedback.to_dict())

    return r


def _admin_pins(request: Request, header: str) -> dict[str, str]:
    """The pins of an ``X-Reengage-Version`` header, for a token with the admin role only
    (Seldon's ``x-seldon-route`` is the peer): 403 otherwise."""
    principal = request.scope.get("auth")
    if not isinstance(principal, Principal):
        authenticator = getattr(request.app.state, "authenticator", None)
        principal = (
            authenticator.identify(request.headers.get("authorization")) if authenticator else None
        )
    if principal is None or ADMIN not in principal.roles:
        raise PermissionDenied(
            "X-Reengage-Version pins a model version: it needs a token with the admin role",
            field="x-reengage-version",
        )
    return parse_pins(header)


def parse_pins(header: str) -> dict[str, str]:
    """``X-Reengage-Version: churn=4[, engagement=2]`` as role -> version."""
    pins: dict[str, str] = {}
    for part in header.split(","):
        role, sep, version = (x.strip() for x in part.partition("="))
        if not sep or role not in ("churn", "engagement") or not version.isdigit() or role in pins:
            raise InvalidRequest(
                "write the pin as 'churn=<version>' or 'churn=<v>, engagement=<v>'",
                field="x-reengage-version",
            )
        pins[role] = version
    return pins
