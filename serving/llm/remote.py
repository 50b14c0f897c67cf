"""A separately run OpenAI-compatible server (``vllm serve model_repo/email_writer``) as the engine.

Uses the ``openai`` client's completions API. One HTTP request per prompt, sent
concurrently: the server batches them, and each answer carries its own token usage.
A LoRA adapter is selected the way ``vllm serve --lora-modules`` expects: by model name.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from serving.errors import DependencyUnavailable
from serving.llm.engine import Generation, LLMEngine, SamplingParams, TextDelta

if TYPE_CHECKING:
    from serving.settings import LLMSettings


def request_kwargs(settings: "LLMSettings", params: SamplingParams) -> dict[str, Any]:
    """Arguments for ``AsyncOpenAI.completions.create`` (without prompt and stream)."""
    kwargs: dict[str, Any] = {
        "model": params.lora or settings.remote_model,
        "max_tokens": params.max_tokens,
        "temperature": params.temperature,
        "top_p": params.top_p,
    }
    if params.stop:
        kwargs["stop"] = list(params.stop)[:4]
    if params.seed is not None:
        kwargs["seed"] = params.seed
    return kwargs


class RemoteEngine(LLMEngine):
    backend = "remote"

    def __init__(self, settings: "LLMSettings") -> None:
        self.settings = settings
        self.model_name = settings.remote_model
        self.adapters = tuple(
            settings.lora_adapters
        )  # served by the remote server under these model names
        self._client: Any = None

    async def start(self) -> None:
        if self._client is None:
            from openai import AsyncOpenAI

            self._client = AsyncOpenAI(
                base_url=self.settings.remote_url,
                api_key=self.settings.remote_api_key,
                timeout=self.settings.timeout_s,
                max_retries=0,
            )

    async def stop(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None

    async def check_health(self) -> None:
        await self.start()
        try:
            models = await self._client.models.list()
        except Exception as exc:
            raise DependencyUnavailable(
                f"remote LLM at {self.settings.remote_url} unreachable: {exc}"
            ) from exc
        names = [m.id for m in models.data]
        if self.settings.remote_model not in names:
            raise DependencyUnavailable(
                f"remote LLM serves {names}, not {self.settings.remote_model!r}"
            )

    async def generate(self, prompts: list[str], params: SamplingParams) -> list[Generation]:
        await self.start()
        kwargs = request_kwargs(self.settings, params)
        return list(await asyncio.gather(*(self._one(p, kwargs) for p in prompts)))

    async def _one(self, prompt: str, kwargs: dict[str, Any]) -> Generation:
        try:
            answer = await self._client.completions.create(prompt=prompt, **kwargs)
        except Exception as exc:
            raise DependencyUnavailable(
                f"remote LLM at {self.settings.remote_url} failed: {exc}"
            ) from exc
        choice = answer.choices[0]
        usage = answer.usage
        return Generation(
            choice.text,
            usage.prompt_tokens if usage else 0,
            usage.completion_tokens if usage else 0,
            "length" if choice.finish_reason == "length" else "stop",
        )

    async def generate_stream(self, prompt: str, params: SamplingParams) -> AsyncIterator[str]:
        await self.start()
        try:
            stream = await self._client.completions.create(
                prompt=prompt,
                stream=True,
                stream_options={"include_usage": True},
                **request_kwargs(self.settings, params),
            )
        except Exception as exc:
            raise DependencyUnavailable(
                f"remote LLM at {self.settings.remote_url} failed: {exc}"
            ) from exc
        reason, usage = None, None
        async for chunk in stream:
            usage = chunk.usage or usage
            for choice in chunk.choices:
                reason = choice.finish_reason or reason
                if choice.text:
                    yield TextDelta(choice.text)
        yield TextDelta(
            "",
            finish_reason="length" if reason == "length" else "stop",
            prompt_tokens=usage.prompt_tokens if usage else None,
            completion_tokens=usage.completion_tokens if usage else None,
        )
