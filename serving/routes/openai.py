"""OpenAI-compatible completions on the email-writer LLM (the ``openai`` client works).

``response_model`` and ``responses`` only declare the schema; handlers encode with orjson.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from serving.dataplane import DataPlane
from serving.protocol.openai import CompletionRequest, CompletionResponse, CompletionStreamResponse, ModelList
from serving.protocol.openapi import error_responses, inline_schema, request_body
from serving.protocol.v1 import ErrorResponse
from serving.routes.responses import json_response

_STREAM = {"200": {"content": {"text/event-stream": {
    "schema": {"type": "string",
               "description": "with stream: true, one 'data: <CompletionStreamResponse JSON>' event per chunk, "
                              "then 'data: [DONE]'"},
    "itemSchema": inline_schema(CompletionStreamResponse),
}}}}


def router(dataplane: DataPlane) -> APIRouter:
    r = APIRouter(tags=["openai"], default_response_class=JSONResponse)

    @r.post("/v1/completions", response_model=CompletionResponse,
            summary="OpenAI-compatible completions (stream with SSE)",
            responses=error_responses(ErrorResponse, 400, 404, 422, 503, 504),
            openapi_extra={**request_body(CompletionRequest), "responses": _STREAM})
    async def completions(request: Request) -> Response:
        req = CompletionRequest.model_validate_json(await request.body())
        if req.stream:
            frames = dataplane.completions_stream(req)
            return StreamingResponse(frames, media_type="text/event-stream",
                                     headers={"cache-control": "no-cache"})
        response = await dataplane.completions(req)
        return json_response(response.model_dump(mode="json"))

    @r.get("/v1/models", response_model=ModelList, summary="Models the completions endpoint answers to",
           responses=error_responses(ErrorResponse, 503))
    async def models() -> Response:
        return json_response((await dataplane.llm_models()).model_dump(mode="json"))

    return r
