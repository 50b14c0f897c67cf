"""Streams that fail loudly: POST /v1/completions with ``"stream": true`` answers a bad
request (unknown model, empty prompt) with its JSON 4xx before the stream starts, and an
error once streaming ends the stream with an error event, ``data: [DONE]`` and a clean end
of the chunked body.

The real app (``serving.http.create_app``) over a ``DataPlane`` whose writer is the real
``WriterService`` on the tiny trained checkpoint (transformers engine), served by uvicorn
on a free port: real chunked HTTP for the ``openai`` client and for raw SSE with httpx.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from serving.llm.prompts import build_prompt

PROMPT = build_prompt({"first_name": "Ana"}, "discount_offer", {})
TOO_LONG = "word " * 2000  # more tokens than the tiny model's 256 positions: refused by the engine


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def base_url(
    tiny_checkpoint: tuple[Path, dict], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    import uvicorn

    from serving.components.writer import WriterService
    from serving.dataplane import DataPlane
    from serving.http import create_app
    from serving.settings import load_settings
    from tests.serving.conftest import LocalFeatures, TableReader

    tmp = tmp_path_factory.mktemp("stream_errors")
    settings = load_settings(
        {
            "data_dir": str(tmp / "data"),
            "bandit": {"enabled": False},
            "llm": {
                "backend": "transformers",
                "model_path": str(tiny_checkpoint[0]),
                "num_threads": 1,
                "voices": [],
                "max_tokens": 8,
                "temperature": 0.0,
                "timeout_s": 60,
            },
        }
    )
    plane = DataPlane(
        settings, LocalFeatures(TableReader()), {}, writer=WriterService(settings.llm)
    )
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(plane), host="127.0.0.1", port=port, log_level="warning", lifespan="off"
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


def _raw(base_url: str, body: dict) -> tuple[httpx.Response, str, list[str]]:
    """The answer, its body and its SSE ``data:`` payloads, read as they arrive (httpx
    raises on a broken chunked body)."""
    with (
        httpx.Client(timeout=60) as client,
        client.stream("POST", f"{base_url}/v1/completions", json=body) as r,
    ):
        text = "".join(r.iter_text())
    return (
        r,
        text,
        [line[len("data: ") :] for line in text.split("\n\n") if line.startswith("data: ")],
    )


@pytest.mark.parametrize(
    "body, status, field",
    [
        ({"model": "no_such_model", "prompt": PROMPT}, 404, "model"),
        ({"model": "email_writer", "prompt": ""}, 422, "prompt"),
        ({"model": "email_writer", "prompt": [PROMPT, ""]}, 422, "prompt"),
        (
            {"model": "email_writer", "prompt": TOO_LONG},
            422,
            "prompt",
        ),  # the first prompt fails: before the stream
    ],
)
def test_a_bad_stream_request_is_a_json_error_before_the_stream(
    base_url: str, body: dict, status: int, field: str
) -> None:
    r, text, events = _raw(base_url, {**body, "stream": True})
    assert r.status_code == status and r.headers["content-type"].startswith("application/json")
    assert json.loads(text)["error"]["field"] == field and not events
    plain = httpx.post(
        f"{base_url}/v1/completions", json=body, timeout=60
    )  # same answer without stream
    assert plain.status_code == status and plain.json()["error"]["field"] == field


def test_the_openai_client_sees_the_4xx_of_a_stream(base_url: str) -> None:
    from openai import NotFoundError, OpenAI, UnprocessableEntityError

    client = OpenAI(base_url=f"{base_url}/v1", api_key="none", max_retries=0)
    with pytest.raises(NotFoundError, match="no_such_model"):
        client.completions.create(model="no_such_model", prompt=PROMPT, stream=True)
    with pytest.raises(UnprocessableEntityError, match="prompt"):
        client.completions.create(model="email_writer", prompt="", stream=True)


def test_an_error_mid_stream_is_an_error_event_then_done(base_url: str) -> None:
    """The first prompt streams; the second fills the context: an error event, then [DONE]."""
    r, _, events = _raw(
        base_url, {"model": "email_writer", "prompt": [PROMPT, TOO_LONG], "stream": True}
    )
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert chunks[0]["choices"][0]["index"] == 0  # the first prompt's text came first
    error = chunks[-1]["error"]
    assert (
        error["code"] == 422 and error["type"] == "invalid_request" and error["field"] == "prompt"
    )
    assert all("error" not in c for c in chunks[:-1])


def test_the_openai_client_raises_on_an_error_event(base_url: str) -> None:
    from openai import APIError, OpenAI

    client = OpenAI(base_url=f"{base_url}/v1", api_key="none", max_retries=0)
    stream = client.completions.create(model="email_writer", prompt=[PROMPT, TOO_LONG], stream=True)
    texts = []
    with pytest.raises(APIError, match="context"):
        for chunk in stream:
            texts.append(chunk.choices[0].text)
    assert texts  # the first prompt's chunks arrived before the error


def test_a_good_stream_still_ends_with_done(base_url: str) -> None:
    r, _, events = _raw(base_url, {"model": "email_writer", "prompt": PROMPT, "stream": True})
    assert r.status_code == 200 and events[-1] == "[DONE]" and len(events) >= 2
    assert all("error" not in json.loads(e) for e in events[:-1])
