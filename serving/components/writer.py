"""The email writer (LLM) as a service: always its own deployment, scaled apart.

The engine starts once per process (vLLM on a GPU, transformers on the CPU); the
transformers engine groups concurrent requests into one generate call.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from serving import metrics
from serving.llm.service import EmailWriter
from serving.protocol.openai import SSE_DONE, sse_event
from serving.settings import LLMSettings


class WriterService:
    def __init__(self, settings: LLMSettings) -> None:
        self.writer = EmailWriter(settings)
        self._started: asyncio.Task[None] | None = None

    async def _ready(self) -> None:
        if self._started is None:
            self._started = asyncio.get_running_loop().create_task(self.writer.start())
        await asyncio.shield(self._started)

    async def write(
        self,
        facts: dict[str, Any],
        action: str,
        scores: dict[str, Any],
        max_tokens: int | None = None,
        temperature: float | None = None,
        adapter: str | None = None,
    ) -> dict[str, Any]:
        """One email; ``adapter`` names the LoRA adapter (brand voice) to write it, None the base
        model."""
        await self._ready()
        result = await self.writer.write(
            facts, action, scores, max_tokens=max_tokens, temperature=temperature, lora=adapter
        )
        if result.written:
            metrics.email(result.backend, result.fallback)
        return result.to_dict()

    async def complete(self, request: Any) -> Any:
        await self._ready()
        return await self.writer.complete(request)

    async def complete_stream(self, request: Any) -> AsyncIterator[str]:
        """Server-sent event frames, ending with ``[DONE]``."""
        await self._ready()
        async for chunk in self.writer.complete_stream(request):
            yield sse_event(chunk)
        yield SSE_DONE

    async def models(self) -> Any:
        return self.writer.models()

    async def ready(self) -> bool:
        await self._ready()
        return True

    async def check_health(self) -> None:
        """A replica whose engine died is restarted (Serve calls this periodically)."""
        if self._started is not None and self._started.done():
            await self.writer.check_health()
