"""KServe v2 / Open Inference Protocol over REST, as ``tritonclient.http`` speaks it.

Every model route also takes ``/versions/{v}``; the binary tensor extension is decoded
and encoded by ``serving.codecs.binary`` (pure functions over bytes).
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from serving.codecs.binary import HEADER_LENGTH, decode_infer_request, encode_infer_response
from serving.dataplane import DataPlane
from serving.errors import MalformedBody
from serving.http import json_response
from serving.protocol.v2 import InferenceResponse, RepositoryIndexRequest


def router(dataplane: DataPlane) -> APIRouter:
    r = APIRouter(tags=["v2"])

    @r.get("/v2")
    async def server_metadata() -> Response:
        return json_response(dataplane.server_metadata())

    @r.get("/v2/health/live")
    async def live() -> Response:
        return json_response({"live": True})

    @r.get("/v2/health/ready")
    async def ready() -> Response:
        ok = await dataplane.ready()
        return json_response({"ready": ok}, 200 if ok else 503)

    @r.get("/v2/models/{model_name}")
    @r.get("/v2/models/{model_name}/versions/{model_version}")
    async def model_metadata(model_name: str, model_version: str | None = None) -> Response:
        return json_response(await dataplane.model_metadata(model_name, model_version))

    @r.get("/v2/models/{model_name}/ready")
    @r.get("/v2/models/{model_name}/versions/{model_version}/ready")
    async def model_ready(model_name: str, model_version: str | None = None) -> Response:
        ok = await dataplane.model_ready(model_name, model_version)
        return json_response({"name": model_name, "ready": ok}, 200 if ok else 503)

    @r.post("/v2/models/{model_name}/infer")
    @r.post("/v2/models/{model_name}/versions/{model_version}/infer")
    async def infer(request: Request, model_name: str, model_version: str | None = None) -> Response:
        body = await request.body()
        request_v2, arrays = decode_infer_request(body, _header_length(request))
        version, outputs = await dataplane.infer(model_name, model_version, arrays)
        meta = InferenceResponse(model_name=model_name, model_version=version, id=request_v2.id, outputs=[])
        payload, headers = encode_infer_response(meta, outputs, request_v2)
        return Response(payload, headers=headers)

    @r.post("/v2/repository/index")
    async def repository_index(request: Request) -> Response:
        body = await request.body()
        req = RepositoryIndexRequest.model_validate_json(body) if body.strip() else RepositoryIndexRequest()
        return json_response(await dataplane.repository_index(bool(req.ready)))

    @r.post("/v2/repository/models/{model_name}/load")
    async def load(model_name: str) -> Response:
        await dataplane.load_model(model_name)
        return json_response({})

    @r.post("/v2/repository/models/{model_name}/unload")
    async def unload(model_name: str) -> Response:
        await dataplane.unload_model(model_name)
        return json_response({})

    return r


def _header_length(request: Request) -> int | None:
    raw = request.headers.get(HEADER_LENGTH)
    if raw is None:
        return None
    try:
        value = int(raw)
    except ValueError:
        raise MalformedBody(f"{HEADER_LENGTH} must be an integer, got '{raw}'", field=HEADER_LENGTH) from None
    if value < 0:
        raise MalformedBody(f"{HEADER_LENGTH} must be >= 0", field=HEADER_LENGTH)
    return value
