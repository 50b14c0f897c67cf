"""Completions wire types, checked against the `openai` client's own models."""

from __future__ import annotations

import json

import pytest
from openai.types import Completion, Model
from pydantic import ValidationError

from serving.protocol.openai import (
    SSE_DONE,
    CompletionChoice,
    CompletionRequest,
    CompletionResponse,
    CompletionStreamResponse,
    CompletionUsage,
    ModelCard,
    ModelList,
    sse_event,
)


def test_request_accepts_what_the_openai_client_sends() -> None:
    req = CompletionRequest.model_validate(
        {
            "model": "email_writer",
            "prompt": ["a", "b"],
            "max_tokens": 8,
            "temperature": 0,
            "stop": "\n",
            "stream": True,
            "seed": 1,
            "stream_options": {"include_usage": True},
            "n": 1,
            "user": "u1",
        }
    )
    assert (
        req.prompts == ["a", "b"] and req.stop_list == ["\n"] and req.stream_options.include_usage
    )
    assert CompletionRequest(model="m", prompt="x").prompts == ["x"]


@pytest.mark.parametrize(
    ("payload", "needle"),
    [
        ({"n": 2}, "n=2"),
        ({"best_of": 3}, "best_of"),
        ({"echo": True}, "echo"),
        ({"logprobs": 2}, "logprobs"),
        ({"frequency_penalty": 0.5}, "frequency_penalty"),
        ({"temperature": 3}, "temperature"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"prompt": []}, "prompt"),
        ({"stop": ["a", "b", "c", "d", "e"]}, "stop"),
        ({"frobnicate": 1}, "frobnicate"),
    ],
)
def test_request_rejects_unsupported_options_by_name(payload: dict, needle: str) -> None:
    with pytest.raises(ValidationError) as err:
        CompletionRequest.model_validate({"model": "m", "prompt": "x", **payload})
    assert needle in str(err.value)


def test_response_parses_as_openai_completion() -> None:
    choice = CompletionChoice(index=0, text="hi", finish_reason="stop")
    resp = CompletionResponse(
        model="email_writer",
        choices=[choice],
        usage=CompletionUsage(prompt_tokens=3, completion_tokens=1, total_tokens=4),
    )
    parsed = Completion.model_validate(json.loads(resp.model_dump_json()))
    assert parsed.choices[0].text == "hi" and parsed.usage.total_tokens == 4
    assert parsed.object == "text_completion" and parsed.id.startswith("cmpl-")


def test_stream_chunk_is_one_sse_frame_the_client_can_parse() -> None:
    chunk = CompletionStreamResponse(model="m", choices=[CompletionChoice(index=0, text="he")])
    frame = sse_event(chunk)
    assert frame.startswith("data: ") and frame.endswith("\n\n") and SSE_DONE == "data: [DONE]\n\n"
    parsed = Completion.construct(**json.loads(frame[len("data: ") :]))
    assert parsed.choices[0].finish_reason is None and parsed.choices[0].text == "he"


def test_model_list_parses_as_openai_models() -> None:
    listing = ModelList(data=[ModelCard(id="email_writer")])
    dumped = json.loads(listing.model_dump_json())
    assert dumped["object"] == "list"
    assert Model.model_validate(dumped["data"][0]).id == "email_writer"
