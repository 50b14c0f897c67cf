"""The GPU backend: vLLM's async engine (``vllm.v1.engine.async_llm.AsyncLLM``) in-process.

Written against vLLM's documented API (0.33: ``AsyncEngineArgs``, ``AsyncLLM.from_engine_args``,
``AsyncLLM.generate(prompt, sampling_params, request_id, lora_request=...)``,
``SamplingParams``, ``LoRARequest(lora_name, lora_int_id, lora_path)``). ``vllm`` is
imported only in ``start``, so this module imports, and its argument mapping is tested,
on machines without vLLM. vLLM batches continuously, so prompts are submitted as
concurrent requests rather than grouped here.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from serving.errors import DependencyUnavailable, InvalidRequest
from serving.llm.engine import Generation, LLMEngine, SamplingParams, TextDelta

if TYPE_CHECKING:
    from serving.settings import LLMSettings

INSTALL_HINT = "vLLM is not installed: `pip install 'reengage[gpu]'` on a GPU machine, or set llm.backend"


def engine_args(settings: "LLMSettings") -> dict[str, Any]:
    """Keyword arguments for ``vllm.engine.arg_utils.AsyncEngineArgs``."""
    args: dict[str, Any] = {
        "model": str(settings.model_path),
        "tokenizer": str(settings.model_path),
        "served_model_name": [settings.served_model_name],
        "dtype": settings.dtype,
        "gpu_memory_utilization": settings.gpu_memory_utilization,
        "seed": settings.train_seed,
    }
    if settings.max_model_len is not None:
        args["max_model_len"] = settings.max_model_len
    if settings.lora_adapters:
        args.update(enable_lora=True, max_loras=len(settings.lora_adapters), max_lora_rank=settings.max_lora_rank)
    args.update(settings.vllm_engine_kwargs)
    return args


def sampling_kwargs(params: SamplingParams, *, stream: bool) -> dict[str, Any]:
    """Keyword arguments for ``vllm.SamplingParams``; ``output_kind`` is a ``RequestOutputKind`` name."""
    kwargs: dict[str, Any] = {
        "n": 1,
        "max_tokens": params.max_tokens,
        "temperature": params.temperature,
        "top_p": params.top_p,
        "stop": list(params.stop) or None,
        "seed": params.seed,
        "output_kind": "DELTA" if stream else "FINAL_ONLY",
    }
    return kwargs


def lora_kwargs(settings: "LLMSettings", name: str | None) -> dict[str, Any] | None:
    """Keyword arguments for ``vllm.lora.request.LoRARequest``; ids are stable by setting order."""
    if name is None:
        return None
    names = list(settings.lora_adapters)
    if name not in settings.lora_adapters:
        raise InvalidRequest(f"unknown LoRA adapter {name!r}; configured: {names}", field="model")
    return {"lora_name": name, "lora_int_id": names.index(name) + 1, "lora_path": str(settings.lora_adapters[name])}


def finish_reason(reason: str | None) -> str:
    return "length" if reason == "length" else "stop"


class VLLMEngine(LLMEngine):
    backend = "vllm"

    def __init__(self, settings: "LLMSettings") -> None:
        self.settings = settings
        self.model_name = settings.served_model_name
        self._engine: Any = None
        self._vllm: dict[str, Any] = {}

    async def start(self) -> None:
        if self._engine is not None:
            return
        try:
            from vllm import SamplingParams as VSamplingParams
            from vllm.engine.arg_utils import AsyncEngineArgs
            from vllm.lora.request import LoRARequest
            from vllm.sampling_params import RequestOutputKind
            from vllm.v1.engine.async_llm import AsyncLLM
        except ImportError as exc:
            raise DependencyUnavailable(f"{INSTALL_HINT} ({exc})", field="llm.backend") from None
        self._vllm = {"SamplingParams": VSamplingParams, "LoRARequest": LoRARequest, "OutputKind": RequestOutputKind}
        self._engine = AsyncLLM.from_engine_args(AsyncEngineArgs(**engine_args(self.settings)))

    async def check_health(self) -> None:
        if self._engine is None:
            raise DependencyUnavailable("the vLLM engine is not started")
        try:
            await self._engine.check_health()
        except Exception as exc:
            raise DependencyUnavailable(f"vLLM engine unhealthy: {type(exc).__name__}: {exc}") from exc

    async def stop(self) -> None:
        if self._engine is not None:
            self._engine.shutdown()
            self._engine = None

    def _request(self, params: SamplingParams, stream: bool) -> tuple[Any, Any]:
        kwargs = sampling_kwargs(params, stream=stream)
        kwargs["output_kind"] = self._vllm["OutputKind"][kwargs["output_kind"]]
        lora = lora_kwargs(self.settings, params.lora)
        return self._vllm["SamplingParams"](**kwargs), (self._vllm["LoRARequest"](**lora) if lora else None)

    async def generate(self, prompts: list[str], params: SamplingParams) -> list[Generation]:
        await self.start()
        sampling, lora = self._request(params, stream=False)
        return list(await asyncio.gather(*(self._one(p, sampling, lora) for p in prompts)))

    async def _one(self, prompt: str, sampling: Any, lora: Any) -> Generation:
        final = None
        async for out in self._engine.generate(prompt, sampling, f"ew-{uuid.uuid4().hex}", lora_request=lora):
            final = out
        if final is None or not final.outputs:
            raise DependencyUnavailable("vLLM returned no output")
        choice = final.outputs[0]
        return Generation(choice.text, len(final.prompt_token_ids or ()), len(choice.token_ids),
                          finish_reason(choice.finish_reason))  # type: ignore[arg-type]

    async def generate_stream(self, prompt: str, params: SamplingParams) -> AsyncIterator[str]:
        await self.start()
        sampling, lora = self._request(params, stream=True)
        produced, prompt_tokens, reason = 0, 0, None
        async for out in self._engine.generate(prompt, sampling, f"ew-{uuid.uuid4().hex}", lora_request=lora):
            choice = out.outputs[0]
            produced += len(choice.token_ids)
            prompt_tokens = len(out.prompt_token_ids or ())
            reason = choice.finish_reason or reason
            if choice.text:
                yield TextDelta(choice.text)
        yield TextDelta("", finish_reason=finish_reason(reason), prompt_tokens=prompt_tokens,  # type: ignore[arg-type]
                        completion_tokens=produced)
