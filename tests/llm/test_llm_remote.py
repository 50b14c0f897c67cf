"""The `openai` client and the remote engine against a real OpenAI-compatible HTTP server.

The server is a minimal FastAPI app over ``EmailWriter`` (what the lead's
``/v1/completions`` route does), run by uvicorn on a free port in this process.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator

import pytest

from serving.llm.engine import SamplingParams
from serving.llm.prompts import build_prompt
from serving.llm.remote import RemoteEngine, request_kwargs
from serving.llm.service import EmailWriter
from serving.protocol.openai import SSE_DONE, CompletionRequest, sse_event
from serving.settings import LLMSettings

PROMPT = build_prompt({"first_name": "Ana"}, "discount_offer", {})


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_app(writer: EmailWriter):
    from fastapi import FastAPI
    from fastapi.responses import StreamingResponse

    app = FastAPI()

    @app.get("/v1/models")
    async def models() -> dict:
        return writer.models().model_dump()

    @app.post("/v1/completions")
    async def completions(req: CompletionRequest):
        if not req.stream:
            return (await writer.complete(req)).model_dump()

        async def events() -> AsyncIterator[str]:
            async for chunk in writer.complete_stream(req):
                yield sse_event(chunk)
            yield SSE_DONE

        return StreamingResponse(events(), media_type="text/event-stream")

    return app


@pytest.fixture(scope="module")
def server_url(tiny_checkpoint) -> Iterator[str]:
    import uvicorn

    settings = LLMSettings(
        backend="transformers", model_path=tiny_checkpoint[0], temperature=0.0, max_tokens=16
    )
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            make_app(EmailWriter(settings)),
            host="127.0.0.1",
            port=port,
            log_level="warning",
            lifespan="off",
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}/v1"
    server.should_exit = True
    thread.join(10)


def test_openai_client_completions_and_stream(server_url: str) -> None:
    from openai import OpenAI

    client = OpenAI(base_url=server_url, api_key="none", max_retries=0)
    assert [m.id for m in client.models.list().data] == ["email_writer"]
    full = client.completions.create(
        model="email_writer", prompt=PROMPT, max_tokens=8, temperature=0
    )
    assert full.choices[0].finish_reason in {"stop", "length"} and full.usage.completion_tokens <= 8
    chunks = list(
        client.completions.create(
            model="email_writer",
            prompt=PROMPT,
            max_tokens=8,
            temperature=0,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert "".join(c.choices[0].text for c in chunks if c.choices) == full.choices[0].text
    assert chunks[-1].usage.total_tokens == full.usage.total_tokens


def test_remote_engine_generates_and_streams(server_url: str) -> None:
    engine = RemoteEngine(
        LLMSettings(backend="remote", remote_url=server_url, remote_model="email_writer")
    )
    params = SamplingParams(max_tokens=8, temperature=0.0)

    async def run():
        await engine.check_health()
        gens = await engine.generate([PROMPT, PROMPT], params)
        deltas = [d async for d in engine.generate_stream(PROMPT, params)]
        await engine.stop()
        return gens, deltas

    gens, deltas = asyncio.run(run())
    assert (
        gens[0].text == gens[1].text
        and gens[0].completion_tokens <= 8
        and gens[0].prompt_tokens > 10
    )
    assert "".join(deltas) == gens[0].text
    assert deltas[-1].finish_reason == gens[0].finish_reason
    assert deltas[-1].completion_tokens == gens[0].completion_tokens


def test_remote_health_fails_clearly_when_nothing_listens() -> None:
    from serving.errors import DependencyUnavailable

    engine = RemoteEngine(
        LLMSettings(backend="remote", remote_url=f"http://127.0.0.1:{free_port()}/v1", timeout_s=2)
    )
    with pytest.raises(DependencyUnavailable):
        asyncio.run(engine.check_health())


def test_request_kwargs_select_lora_by_model_name() -> None:
    s = LLMSettings(remote_model="email_writer")
    assert request_kwargs(s, SamplingParams(lora="vip", stop=("a",), seed=2))["model"] == "vip"
    assert request_kwargs(s, SamplingParams()) == {
        "model": "email_writer",
        "max_tokens": 160,
        "temperature": 0.7,
        "top_p": 1.0,
    }
