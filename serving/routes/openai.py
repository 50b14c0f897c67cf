"""OpenAI-compatible completions on the email-writer LLM (the ``openai`` client works)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse

from serving.dataplane import DataPlane
from serving.http import json_response
from serving.protocol.openai import CompletionRequest


def router(dataplane: DataPlane) -> APIRouter:
    r = APIRouter(tags=["openai"])

    @r.post("/v1/completions", summary="OpenAI-compatible completions (stream with SSE)")
    async def completions(request: Request) -> Response:
        req = CompletionRequest.model_validate_json(await request.body())
        if req.stream:
            frames = dataplane.completions_stream(req)
            return StreamingResponse(frames, media_type="text/event-stream",
                                     headers={"cache-control": "no-cache"})
        response = await dataplane.completions(req)
        return json_response(response.model_dump(mode="json"))

    @r.get("/v1/models", summary="Models the completions endpoint answers to")
    async def models() -> Response:
        return json_response((await dataplane.llm_models()).model_dump(mode="json"))

    return r
