"""Our JSON API: /v1/score, /v1/feedback (thin: parse, call the dataplane, encode)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from serving.dataplane import DataPlane, parse_ids
from serving.http import json_response
from serving.protocol.v1 import (
    FeedbackRequest,
    FeedbackResponse,
    ReengageRequest,
    ReengageResponse,
    ScoreRequest,
    ScoreResponse,
)


def router(dataplane: DataPlane) -> APIRouter:
    r = APIRouter(tags=["v1"])

    @r.post("/v1/score", response_model=ScoreResponse, summary="Score 1 to 10,000 customers")
    async def score(request: Request) -> Response:
        # Parsed from raw bytes by pydantic's JSON parser: no intermediate dict of 10k ints.
        req = ScoreRequest.model_validate_json(await request.body())
        result = await dataplane.score(parse_ids(req.customer_ids))
        return json_response(result.columns())

    @r.post("/v1/reengage", response_model=ReengageResponse, summary="Score one customer and write the email")
    async def reengage(request: Request) -> Response:
        req = ReengageRequest.model_validate_json(await request.body())
        return json_response(await dataplane.reengage(req.customer_id, req.action, req.max_tokens, req.temperature))

    @r.post("/v1/feedback", response_model=FeedbackResponse, summary="Post the reward of a decision")
    async def feedback(request: Request) -> Response:
        req = FeedbackRequest.model_validate_json(await request.body())
        return json_response(await dataplane.feedback(req.decision_id, float(req.reward)))

    return r
