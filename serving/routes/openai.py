"""OpenAI-compatible completions on the email-writer LLM (the ``openai`` client works).

``response_model`` and ``responses`` only declare the schema; handlers encode with orjson.

A stream fails loudly, as vLLM's OpenAI server does: the request is validated (the model
included) and its first frame produced before the answer starts, so a bad request or a
writer that is down is a plain JSON 4xx/5xx; an error once the stream has started ends
it with an error event (``data: {"error": {...}}``) then ``data: [DONE]``, and a clean
end of the chunked body.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from serving.dataplane import DataPlane
from serving.errors import status_and_body
from serving.protocol.openai import (
    SSE_DONE,
    CompletionRequest,
    CompletionResponse,
    CompletionStreamResponse,
    ModelList,
    sse_error,
)
from serving.protocol.openapi import error_responses, inline_schema, request_body
from serving.protocol.v1 import ErrorResponse
from serving.routes.responses import json_response

log = logging.getLogger("reengage")

_STREAM = {
    "200": {
        "content": {
            "text/event-stream": {
                "schema": {
                    "type": "string",
                    "description": "with stream: true, one "
                    "'data: <CompletionStreamResponse JSON>' event per chunk, "
                    "then 'data: [DONE]'; an error after the first chunk is one "
                    "'data: {\"error\": {...}}' event, then 'data: [DONE]'",
                },
                "itemSchema": inline_schema(CompletionStreamResponse),
            }
        }
    }
}

_PROMPT = "Write a short email inviting a customer back."
# "model": the server's default served_model_name (llm.served_model_name)
_EXAMPLES = {
    "completion": {
        "summary": "one completion, as JSON",
        "value": {"model": "email_writer", "prompt": _PROMPT, "max_tokens": 16},
    },
    "stream": {
        "summary": "the same, streamed as server-sent events",
        "value": {"model": "email_writer", "prompt": _PROMPT, "max_tokens": 16, "stream": True},
    },
}


def router(dataplane: DataPlane) -> APIRouter:
    r = APIRouter(tags=["openai"], default_response_class=JSONResponse)
    inference = dataplane.inference

    @r.post(
        "/v1/completions",
        response_model=CompletionResponse,
        summary="OpenAI-compatible completions (stream with SSE)",
        responses=error_responses(ErrorResponse, 400, 404, 422, 503, 504),
        openapi_extra={
            **request_body(CompletionRequest, examples=_EXAMPLES),
            "responses": _STREAM,
        },
    )
    async def completions(request: Request) -> Response:
        req = CompletionRequest.model_validate_json(await request.body())
        if req.stream:
            frames = aiter(inference.completions_stream(req))
            # validation, the model, the writer, the first token: a failure here is a JSON error
            try:
                first: str | None = await anext(frames)
            except StopAsyncIteration:
                first = None
            return StreamingResponse(
                _guarded(first, frames),
                media_type="text/event-stream",
                headers={"cache-control": "no-cache"},
            )
        response = await inference.completions(req)
        return json_response(response.model_dump(mode="json"))

    @r.get(
        "/v1/models",
        response_model=ModelList,
        summary="Models the completions endpoint answers to",
        responses=error_responses(ErrorResponse, 503),
    )
    async def models() -> Response:
        return json_response((await inference.llm_models()).model_dump(mode="json"))

    return r


async def _guarded(first: str | None, rest: AsyncIterator[str]) -> AsyncIterator[str]:
    """The frames; an error after the first ends the stream with an error event and [DONE]."""
    if first is None:
        yield SSE_DONE
        return
    yield first
    try:
        async for frame in rest:
            yield frame
    except Exception as exc:  # cancellation (the client left) is not caught: nobody to tell
        status, body = status_and_body(exc)
        log.warning("completion stream ended by an error: %d %s", status, body["error"]["message"])
        yield sse_error(status, body)
        yield SSE_DONE
