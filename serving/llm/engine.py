"""The one interface every generation backend implements, and the choice among them.

Kept small on purpose (Ray's ``LLMEngine`` has ~10 abstract methods; callers here need
four): start, batch generate, stream one prompt, health. The service and the Ray
deployment only ever see ``LLMEngine``; which backend runs is a setting.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Literal

FinishReason = Literal["stop", "length"]


@dataclass(frozen=True)
class SamplingParams:
    """Per-request sampling; hashable so equal requests can share one batched call.

    ``temperature == 0`` means greedy decoding. ``lora`` names one of the engine's
    ``adapters`` (``LLMSettings.adapters()``); None is the base model.
    """

    max_tokens: int = 160
    temperature: float = 0.7
    top_p: float = 1.0
    stop: tuple[str, ...] = ()
    seed: int | None = None
    lora: str | None = None


@dataclass(frozen=True)
class Generation:
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: FinishReason = "stop"


class TextDelta(str):
    """A streamed piece of text; the last one of a stream carries the finish reason.

    A ``str`` subclass so ``generate_stream`` stays an ``AsyncIterator[str]`` for
    callers that want only the text.
    """

    finish_reason: FinishReason | None
    prompt_tokens: int | None
    completion_tokens: int | None

    def __new__(
        cls,
        text: str,
        finish_reason: FinishReason | None = None,
        prompt_tokens: int | None = None,
        completion_tokens: int | None = None,
    ) -> "TextDelta":
        obj = super().__new__(cls, text)
        obj.finish_reason = finish_reason
        obj.prompt_tokens = prompt_tokens
        obj.completion_tokens = completion_tokens
        return obj


class LLMEngine(abc.ABC):
    """A text generation backend. ``start`` before anything else; it is idempotent."""

    backend: str = "base"
    model_name: str = ""
    adapters: tuple[
        str, ...
    ] = ()  # the LoRA adapters a request may name in ``SamplingParams.lora``

    @abc.abstractmethod
    async def start(self) -> None: ...

    @abc.abstractmethod
    async def generate(self, prompts: list[str], params: SamplingParams) -> list[Generation]:
        """One generation per prompt, in order; prompts may be batched together."""

    @abc.abstractmethod
    def generate_stream(self, prompt: str, params: SamplingParams) -> AsyncIterator[str]:
        """Text deltas for one prompt; the final item is a ``TextDelta`` with a finish reason."""

    @abc.abstractmethod
    async def check_health(self) -> None:
        """Return when healthy; raise ``DependencyUnavailable`` otherwise."""

    async def stop(self) -> None:  # noqa: B027 - optional hook
        """Release resources (processes, clients); default: nothing to release."""


def truncate_at_stop(text: str, stop: tuple[str, ...]) -> tuple[str, bool]:
    """``text`` cut before the earliest stop sequence, and whether one was found."""
    cut = min((i for i in (text.find(s) for s in stop if s) if i >= 0), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)
