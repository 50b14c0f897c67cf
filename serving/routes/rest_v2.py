"""KServe v2 / Open Inference Protocol over REST, as ``tritonclient.http`` speaks it.

Every model route also takes ``/versions/{v}``; the binary tensor extension is decoded
and encoded by ``serving.codecs.binary`` (pure functions over bytes). ``response_model``
and ``responses`` only declare the schema: handlers return orjson ``Response`` objects,
which FastAPI passes through unvalidated.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from serving.codecs.binary import (
    BINARY_CONTENT_TYPE,
    HEADER_LENGTH,
    decode_infer_request,
    encode_infer_response,
)
from serving.dataplane import DataPlane
from serving.errors import MalformedBody
from serving.protocol.openapi import error_responses, request_body
from serving.protocol.v2 import (
    InferenceRequest,
    InferenceResponse,
    ModelMetadataResponse,
    ModelReadyResponse,
    OIPErrorResponse,
    RepositoryIndexRequest,
    RepositoryIndexResponse,
    RepositoryModelResponse,
    ServerLiveResponse,
    ServerMetadataResponse,
    ServerReadyResponse,
)
from serving.routes.responses import json_response
from serving.security import actor_of

_BINARY_BODY = {
    BINARY_CONTENT_TYPE: {
        "schema": {
            "type": "string",
            "format": "binary",
            "description": f"binary tensor extension: a JSON header of {HEADER_LENGTH} bytes, "
            "then the raw tensors",
        },
    },
}
_BINARY_HEADER = {
    "name": HEADER_LENGTH,
    "in": "header",
    "required": False,
    "description": "length of the JSON header when tensors follow in binary",
    "schema": {"type": "integer", "minimum": 0},
}
_INFER_DOCS: dict[str, Any] = {
    **request_body(InferenceRequest, extra=_BINARY_BODY),
    "parameters": [_BINARY_HEADER],
    "responses": {
        "200": {
            "content": _BINARY_BODY,
            "headers": {
                HEADER_LENGTH: {
                    "description": "present when outputs follow in binary",
                    "schema": {"type": "integer", "minimum": 0},
                }
            },
        }
    },
}


def _not_ready(model: type, *codes: int) -> dict[int | str, dict[str, Any]]:
    return {
        503: {"model": model, "description": "not ready (same body, ready: false)"},
        **error_responses(OIPErrorResponse, *codes),
    }


def router(dataplane: DataPlane) -> APIRouter:
    r = APIRouter(tags=["v2"], default_response_class=JSONResponse)
    kserve = dataplane.kserve

    @r.get(
        "/v2", response_model=ServerMetadataResponse, responses=error_responses(OIPErrorResponse)
    )
    async def server_metadata() -> Response:
        return json_response(kserve.server_metadata())

    @r.get(
        "/v2/health/live",
        response_model=ServerLiveResponse,
        responses=error_responses(OIPErrorResponse),
    )
    async def live() -> Response:
        return json_response({"live": True})

    @r.get(
        "/v2/health/ready",
        response_model=ServerReadyResponse,
        responses=_not_ready(ServerReadyResponse),
    )
    async def ready() -> Response:
        ok = await dataplane.ready()
        return json_response({"ready": ok}, 200 if ok else 503)

    @r.get(
        "/v2/models/{model_name}",
        response_model=ModelMetadataResponse,
        responses=error_responses(OIPErrorResponse, 404, 503),
    )
    @r.get(
        "/v2/models/{model_name}/versions/{model_version}",
        response_model=ModelMetadataResponse,
        responses=error_responses(OIPErrorResponse, 404, 503),
    )
    async def model_metadata(model_name: str, model_version: str | None = None) -> Response:
        return json_response(await kserve.model_metadata(model_name, model_version))

    @r.get(
        "/v2/models/{model_name}/ready",
        response_model=ModelReadyResponse,
        responses=_not_ready(ModelReadyResponse, 404),
    )
    @r.get(
        "/v2/models/{model_name}/versions/{model_version}/ready",
        response_model=ModelReadyResponse,
        responses=_not_ready(ModelReadyResponse, 404),
    )
    async def model_ready(model_name: str, model_version: str | None = None) -> Response:
        ok = await kserve.model_ready(model_name, model_version)
        return json_response({"name": model_name, "ready": ok}, 200 if ok else 503)

    infer_errors = error_responses(OIPErrorResponse, 400, 404, 422, 503, 504)

    @r.post(
        "/v2/models/{model_name}/infer",
        response_model=InferenceResponse,
        responses=infer_errors,
        openapi_extra=_INFER_DOCS,
    )
    @r.post(
        "/v2/models/{model_name}/versions/{model_version}/infer",
        response_model=InferenceResponse,
        responses=infer_errors,
        openapi_extra=_INFER_DOCS,
    )
    async def infer(
        request: Request, model_name: str, model_version: str | None = None
    ) -> Response:
        body = await request.body()
        request_v2, arrays = decode_infer_request(body, _header_length(request))
        version, outputs = await kserve.infer(model_name, model_version, arrays)
        meta = InferenceResponse(
            model_name=model_name, model_version=version, id=request_v2.id, outputs=[]
        )
        payload, headers = encode_infer_response(meta, outputs, request_v2)
        return Response(payload, headers=headers)

    @r.post(
        "/v2/repository/index",
        response_model=RepositoryIndexResponse,
        responses=error_responses(OIPErrorResponse, 400, 422),
        openapi_extra=request_body(RepositoryIndexRequest, required=False),
    )
    async def repository_index(request: Request) -> Response:
        body = await request.body()
        req = (
            RepositoryIndexRequest.model_validate_json(body)
            if body.strip()
            else RepositoryIndexRequest()
        )
        return json_response(await kserve.repository_index(bool(req.ready)))

    @r.post(
        "/v2/repository/models/{model_name}/load",
        response_model=RepositoryModelResponse,
        responses=error_responses(OIPErrorResponse, 404, 503),
    )
    async def load(request: Request, model_name: str) -> Response:
        await kserve.load_model(model_name, actor=actor_of(request.scope))
        return json_response({})

    @r.post(
        "/v2/repository/models/{model_name}/unload",
        response_model=RepositoryModelResponse,
        responses=error_responses(OIPErrorResponse, 404, 503),
    )
    async def unload(request: Request, model_name: str) -> Response:
        await kserve.unload_model(model_name, actor=actor_of(request.scope))
        return json_response({})

    return r


def _header_length(request: Request) -> int | None:
    raw = request.headers.get(HEADER_LENGTH)
    if raw is None:
        return None
    try:
        value = int(raw)
    except ValueError:
        raise MalformedBody(
            f"{HEADER_LENGTH} must be an integer, got '{raw}'", field=HEADER_LENGTH
        ) from None
    if value < 0:
        raise MalformedBody(f"{HEADER_LENGTH} must be >= 0", field=HEADER_LENGTH)
    return value
