"""The rollout admin API under ``/v1/admin/`` (the admin route group: token-protected).

Thin like the other routes: parse, call the rollout plane (``planes.rollouts``, which
audits every call), encode its typed answer as the JSON of docs/api.md.
"""

from __future__ import annotations

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import JSONResponse, Response

from serving.dataplane import DataPlane
from serving.protocol.openapi import error_responses, request_body
from serving.protocol.rollout import (
    EmptyRequest,
    PromoteRequest,
    RolloutChange,
    RolloutRequest,
    RolloutStatus,
)
from serving.protocol.v1 import ErrorResponse
from serving.routes.responses import json_response
from serving.security import actor_of

_ERRORS = error_responses(ErrorResponse, 400, 404, 409, 422, 503)
_VERSION = Path(pattern=r"^[0-9]+$", description="a version folder of the model repository")


def router(dataplane: DataPlane) -> APIRouter:
    r = APIRouter(tags=["admin"], default_response_class=JSONResponse)
    rollouts = dataplane.rollouts

    @r.get(
        "/v1/admin/rollout/{model_name}",
        response_model=RolloutStatus,
        responses=_ERRORS,
        summary="Traffic policy, replicas, shadow summary and per-version evidence",
    )
    async def status(model_name: str, confidence: float = Query(0.95, gt=0, lt=1)) -> Response:
        status = await rollouts.status(model_name, confidence)
        return json_response(status.to_json())

    @r.post(
        "/v1/admin/rollout/{model_name}",
        response_model=RolloutChange,
        responses=_ERRORS,
        summary="Start or change a rollout: default, weighted candidates, shadow",
        openapi_extra=request_body(RolloutRequest),
    )
    async def start(request: Request, model_name: str) -> Response:
        req = RolloutRequest.model_validate_json(await request.body())
        answer = await rollouts.start(model_name, req.model_dump(), actor=actor_of(request.scope))
        return json_response(answer.to_json())

    @r.post(
        "/v1/admin/rollout/{model_name}/promote",
        response_model=RolloutChange,
        responses=_ERRORS,
        summary="Make the candidate the default, unless the evidence says it is worse",
        openapi_extra=request_body(PromoteRequest, required=False),
    )
    async def promote(request: Request, model_name: str) -> Response:
        body = await request.body()
        req = PromoteRequest.model_validate_json(body) if body.strip() else PromoteRequest()
        answer = await rollouts.promote(
            model_name, req.version, req.force, req.confidence, actor=actor_of(request.scope)
        )
        return json_response(answer.to_json())

    @r.post(
        "/v1/admin/rollout/{model_name}/rollback",
        response_model=RolloutChange,
        responses=_ERRORS,
        summary="Stop the candidates and shadow (after a promotion: the previous default)",
        openapi_extra=request_body(EmptyRequest, required=False),
    )
    async def rollback(request: Request, model_name: str) -> Response:
        answer = await rollouts.rollback(model_name, actor=actor_of(request.scope))
        return json_response(answer.to_json())

    @r.post(
        "/v1/admin/models/{model_name}/versions/{model_version}/unload",
        response_model=RolloutChange,
        responses=_ERRORS,
        summary="Unload one version on every replica (refused while it takes traffic)",
        openapi_extra=request_body(EmptyRequest, required=False),
    )
    async def unload_version(
        request: Request, model_name: str, model_version: str = _VERSION
    ) -> Response:
        answer = await rollouts.version_control(
            model_name, model_version, True, actor=actor_of(request.scope)
        )
        return json_response(answer.to_json())

    @r.post(
        "/v1/admin/models/{model_name}/versions/{model_version}/load",
        response_model=RolloutChange,
        responses=_ERRORS,
        summary="Load a version unloaded by the call above",
        openapi_extra=request_body(EmptyRequest, required=False),
    )
    async def load_version(
        request: Request, model_name: str, model_version: str = _VERSION
    ) -> Response:
        answer = await rollouts.version_control(
            model_name, model_version, False, actor=actor_of(request.scope)
        )
        return json_response(answer.to_json())

    return r
