"""Wire types of the OpenAI completions API (``/v1/completions``, ``/v1/models``).

Shaped after OpenAI's spec as the ``openai`` client parses it (``openai.types.Completion``:
streamed chunks and full answers share one shape). Options we do not implement are
accepted only at their neutral value and otherwise rejected by name, never ignored.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

FinishReason = Literal["stop", "length"]


class _Wire(BaseModel):
    # answers are sent with every field (``model_dump``): required in the schema
    model_config = ConfigDict(
        protected_namespaces=(), json_schema_serialization_defaults_required=True
    )


class StreamOptions(_Wire):
    model_config = ConfigDict(extra="forbid")
    include_usage: bool = False


_NEUTRAL: dict[str, tuple[Any, ...]] = {
    "n": (1,),
    "best_of": (None, 1),
    "echo": (False,),
    "logprobs": (None,),
    "suffix": (None,),
    "presence_penalty": (0.0,),
    "frequency_penalty": (0.0,),
    "logit_bias": (None, {}),
}


def _as_validated(schema: dict[str, Any]) -> None:
    """The schema states what the validators below enforce: each unimplemented option takes
    its neutral values only, prompts are not empty (1 to 64 of them), at most 4 stops."""
    props = schema["properties"]
    for name, values in _NEUTRAL.items():
        props[name]["enum"] = list(values)
    text, texts = props["prompt"]["anyOf"]
    text["minLength"] = 1
    texts.update(minItems=1, maxItems=64, items={"type": "string", "minLength": 1})
    props["stop"]["anyOf"][1]["maxItems"] = 4


class CompletionRequest(_Wire):
    model_config = ConfigDict(
        extra="forbid", protected_namespaces=(), json_schema_extra=_as_validated
    )

    model: str = Field(min_length=1)
    prompt: str | list[str]
    max_tokens: int | None = Field(
        None, ge=1, le=4096, description="None: the server's configured default"
    )
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    n: int = Field(1, ge=1)
    stop: str | list[str] | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    seed: int | None = None
    user: str | None = None
    # accepted at their neutral values only (clients send some of these by default)
    best_of: int | None = None
    echo: bool = False
    logprobs: int | None = None
    suffix: str | None = None
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    logit_bias: dict[str, float] | None = None

    @field_validator("prompt")
    @classmethod
    def _prompt(cls, v: str | list[str]) -> str | list[str]:
        if isinstance(v, list) and not (1 <= len(v) <= 64):
            raise ValueError("a prompt list holds 1 to 64 prompts")
        if any(not p for p in ([v] if isinstance(v, str) else v)):
            raise ValueError("a prompt cannot be empty")
        return v

    @field_validator("stop")
    @classmethod
    def _stop(cls, v: str | list[str] | None) -> str | list[str] | None:
        if isinstance(v, list) and len(v) > 4:
            raise ValueError("at most 4 stop sequences")
        return v

    @field_validator(
        "n",
        "best_of",
        "echo",
        "logprobs",
        "suffix",
        "presence_penalty",
        "frequency_penalty",
        "logit_bias",
    )
    @classmethod
    def _unsupported(cls, value: Any, info: ValidationInfo) -> Any:
        """Accepted at their neutral values only; the error names the field."""
        if value not in _NEUTRAL[str(info.field_name)]:
            raise ValueError(f"{info.field_name}={value!r} is not supported by this server")
        return value

    @property
    def prompts(self) -> list[str]:
        return [self.prompt] if isinstance(self.prompt, str) else list(self.prompt)

    @property
    def stop_list(self) -> list[str]:
        return (
            []
            if self.stop is None
            else ([self.stop] if isinstance(self.stop, str) else list(self.stop))
        )


class CompletionUsage(_Wire):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class CompletionChoice(_Wire):
    index: int
    text: str
    logprobs: None = None
    finish_reason: FinishReason | None = None


def completion_id() -> str:
    return f"cmpl-{uuid.uuid4().hex}"


class CompletionResponse(_Wire):
    id: str = Field(default_factory=completion_id)
    object: Literal["text_completion"] = "text_completion"
    created: int = Field(default_factory=lambda: int(time.time()))
    model: str
    choices: list[CompletionChoice]
    usage: CompletionUsage | None = None
    system_fingerprint: str | None = None


class CompletionStreamResponse(CompletionResponse):
    """One server-sent event of a streamed completion (same shape as the full answer)."""


class ModelCard(_Wire):
    id: str
    object: Literal["model"] = "model"
    created: int = Field(default_factory=lambda: int(time.time()))
    owned_by: str = "reengage"


class ModelList(_Wire):
    object: Literal["list"] = "list"
    data: list[ModelCard]


SSE_DONE = "data: [DONE]\n\n"


def sse_event(chunk: BaseModel) -> str:
    """One ``text/event-stream`` frame as the ``openai`` client reads it."""
    return f"data: {chunk.model_dump_json(exclude_none=False)}\n\n"


def sse_error(status: int, body: dict[str, Any]) -> str:
    """The event that ends a stream that failed after it started: our error body (type,
    message, field) with the HTTP status it would have had as ``code``; the ``openai``
    client raises ``APIError`` on it."""
    return (
        "data: "
        + json.dumps({"error": {**body["error"], "code": status}}, separators=(",", ":"))
        + "\n\n"
    )
