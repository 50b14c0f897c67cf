"""Our JSON API: /v1/score, /v1/reengage, /v1/feedback (thin: parse, call the dataplane, encode).

``response_model`` and ``responses`` only declare the schema: the handlers return an
orjson ``Response``, which FastAPI passes through without validating it again.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from serving.dataplane import DataPlane, parse_ids
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
from serving.routes.responses import columnar_response, json_response


def router(dataplane: DataPlane) -> APIRouter:
    # JSONResponse: the media type the schema states; handlers build their own Response
    r = APIRouter(tags=["v1"], default_response_class=JSONResponse)

    @r.post("/v1/score", response_model=ScoreResponse, summary="Score 1 to 10,000 customers",
            responses=error_responses(ErrorResponse, 400, 404, 422, 503, 504),
            openapi_extra=request_body(ScoreRequest))
    async def score(request: Request) -> Response:
        # Parsed from raw bytes by pydantic's JSON parser: no intermediate dict of 10k ints.
        req = ScoreRequest.model_validate_json(await request.body())
        result = await dataplane.score(parse_ids(req.customer_ids), req.explain)
        return columnar_response(request, result.columns())

    @r.post("/v1/explain", response_model=ExplainResponse, summary="Why each model scored 1 to 10,000 customers",
            responses=error_responses(ErrorResponse, 400, 404, 409, 422, 503, 504),
            openapi_extra=request_body(ExplainRequest))
    async def explain(request: Request) -> Response:
        req = ExplainRequest.model_validate_json(await request.body())
        return json_response(await dataplane.explain(parse_ids(req.customer_ids), req.top_k))

    @r.post("/v1/reengage", response_model=ReengageResponse, summary="Score one customer and write the email",
            responses=error_responses(ErrorResponse, 400, 404, 422, 503, 504),
            openapi_extra=request_body(ReengageRequest))
    async def reengage(request: Request) -> Response:
        req = ReengageRequest.model_validate_json(await request.body())
        return json_response(await dataplane.reengage(req.customer_id, req.action, req.max_tokens, req.temperature,
                                                      req.explain, req.adapter))

    @r.post("/v1/feedback", response_model=FeedbackResponse, summary="Post the reward of a decision",
            responses=error_responses(ErrorResponse, 400, 404, 409, 422, 503, 504),
            openapi_extra=request_body(FeedbackRequest))
    async def feedback(request: Request) -> Response:
        req = FeedbackRequest.model_validate_json(await request.body())
        return json_response(await dataplane.feedback(req.decision_id, float(req.reward)))

    return r
