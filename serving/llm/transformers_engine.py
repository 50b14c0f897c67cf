"""The transformers backend: the same checkpoint and adapters vLLM serves, on the CPU or CUDA.

Concurrent ``generate`` calls with equal sampling parameters (adapter included) are
coalesced into one left-padded ``model.generate`` call (up to ``max_batch_size`` prompts,
waiting at most ``batch_wait_s``), since a batch of 8 costs little more than one prompt.
One generation runs at a time: torch already uses every core (or the GPU) for one call,
and that is also what makes switching the active LoRA adapter per call safe.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from serving.errors import DependencyUnavailable, InvalidRequest
from serving.llm.engine import (
    FinishReason,
    Generation,
    LLMEngine,
    SamplingParams,
    TextDelta,
    truncate_at_stop,
)

if TYPE_CHECKING:
    from serving.settings import LLMSettings


def torch_dtype(dtype: str, cuda: bool) -> Any:
    """``auto``: float32 on the CPU; bfloat16 on a GPU that has it, else float16."""
    import torch

    if dtype != "auto":
        return getattr(torch, dtype)
    if not cuda:
        return torch.float32
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def load_model(
    path: Path,
    *,
    adapters: dict[str, Path] | None = None,
    dtype: str = "auto",
    device: str | None = None,
) -> tuple[Any, Any]:
    """(model, tokenizer) ready for batched generation (eval mode, left padding).

    On CUDA when a GPU is there (``device`` None), in ``dtype``. With ``adapters`` the model
    is a peft model holding every LoRA adapter by name; ``adapter_context`` picks one.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    tokenizer = AutoTokenizer.from_pretrained(path)
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model: Any = AutoModelForCausalLM.from_pretrained(
        path, dtype=torch_dtype(dtype, device.startswith("cuda"))
    )
    if adapters:
        from peft import PeftModel

        (first, first_path), *rest = adapters.items()
        model = PeftModel.from_pretrained(model, str(first_path), adapter_name=first)
        for name, adapter_path in rest:
            model.load_adapter(str(adapter_path), adapter_name=name)
    model.to(device)
    model.eval()
    return model, tokenizer


def adapter_context(model: Any, name: str | None) -> contextlib.AbstractContextManager[Any]:
    """Run the base model (``name`` None) or one loaded LoRA adapter for the next generate call."""
    if not hasattr(model, "peft_config"):
        if name is not None:
            raise InvalidRequest(
                f"unknown LoRA adapter {name!r}; this server has none", field="adapter"
            )
        return contextlib.nullcontext()
    if name is None:
        return model.disable_adapter()
    if name not in model.peft_config:
        raise InvalidRequest(
            f"unknown LoRA adapter {name!r}; this server has {list(model.peft_config)}",
            field="adapter",
        )
    model.set_adapter(name)
    return contextlib.nullcontext()


def _generate_kwargs(
    model: Any, tokenizer: Any, params: SamplingParams, prompt_len: int
) -> dict[str, Any]:
    limit = int(
        getattr(model.config, "n_positions", 0)
        or getattr(model.config, "max_position_embeddings", 0)
        or 0
    )
    max_new = params.max_tokens if not limit else min(params.max_tokens, limit - prompt_len)
    if max_new < 1:
        raise InvalidRequest(
            f"the prompt ({prompt_len} tokens) fills the model's context of {limit}", field="prompt"
        )
    kwargs: dict[str, Any] = {
        "max_new_tokens": max_new,
        "pad_token_id": tokenizer.pad_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "do_sample": params.temperature > 0,
    }
    if params.temperature > 0:
        kwargs.update(temperature=params.temperature, top_p=params.top_p, top_k=0)
    if params.stop:
        kwargs.update(stop_strings=list(params.stop), tokenizer=tokenizer)
    return kwargs


def generate_batch(
    model: Any, tokenizer: Any, prompts: list[str], params: SamplingParams
) -> list[Generation]:
    """One ``model.generate`` call for all prompts (blocking; run it off the event loop)."""
    import torch

    enc = tokenizer(prompts, return_tensors="pt", padding=True).to(model.device)
    width = int(enc["input_ids"].shape[1])
    kwargs = _generate_kwargs(model, tokenizer, params, width)
    if params.seed is not None:
        torch.manual_seed(params.seed)
    with torch.inference_mode(), adapter_context(model, params.lora):
        out = model.generate(**enc, **kwargs)
    new = out[:, width:]
    ended = new == tokenizer.eos_token_id
    if tokenizer.pad_token_id is not None:
        ended |= new == tokenizer.pad_token_id
    any_end = ended.any(dim=1)
    lengths = torch.where(
        any_end, ended.int().argmax(dim=1), torch.full_like(any_end, new.shape[1], dtype=torch.long)
    )
    texts = tokenizer.batch_decode(new, skip_special_tokens=True)
    prompt_tokens = enc["attention_mask"].sum(dim=1).tolist()
    results = []
    for text, n_prompt, n_new, eos in zip(texts, prompt_tokens, lengths.tolist(), any_end.tolist()):
        text, hit_stop = truncate_at_stop(text, params.stop)
        finish: FinishReason = (
            "stop" if (eos or hit_stop or n_new < kwargs["max_new_tokens"]) else "length"
        )
        results.append(Generation(text, int(n_prompt), int(n_new), finish))
    return results


@dataclass
class _Pending:
    prompts: list[str]
    params: SamplingParams
    future: asyncio.Future[list[Generation]] = field(repr=False)


class _Cancel:
    """A stopping criterion a streaming consumer flips to end generation early."""

    def __init__(self) -> None:
        self.event = threading.Event()

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        import torch

        return torch.full(
            (input_ids.shape[0],), self.event.is_set(), dtype=torch.bool, device=input_ids.device
        )


class TransformersEngine(LLMEngine):
    backend = "transformers"

    def __init__(
        self,
        model_path: Path,
        *,
        model_name: str = "email_writer",
        max_batch_size: int = 8,
        batch_wait_s: float = 0.01,
        num_threads: int = 0,
        adapters: dict[str, Path] | None = None,
        dtype: str = "auto",
    ) -> None:
        self.model_path = Path(model_path)
        self.model_name = model_name
        self.adapter_paths = dict(adapters or {})
        self.adapters = tuple(self.adapter_paths)
        self.dtype = dtype
        self.max_batch_size = max_batch_size
        self.batch_wait_s = batch_wait_s
        self.num_threads = num_threads
        self.model: Any = None
        self.tokenizer: Any = None
        self._queue: asyncio.Queue[_Pending] | None = None
        self._worker: asyncio.Task[None] | None = None
        self._run_lock: asyncio.Lock | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.batches_run = 0  # observable: how many model.generate calls served the requests

    @classmethod
    def from_settings(cls, settings: "LLMSettings") -> "TransformersEngine":
        return cls(
            settings.model_path,
            model_name=settings.served_model_name,
            max_batch_size=settings.max_batch_size,
            batch_wait_s=settings.batch_wait_s,
            num_threads=settings.num_threads,
            adapters=settings.adapters(),
            dtype=settings.dtype,
        )

    async def start(self) -> None:
        if self.model is not None:
            return
        if not (self.model_path / "config.json").is_file():
            raise DependencyUnavailable(
                f"no LLM checkpoint at {self.model_path}: run `reengage build` first",
                field="llm.model_path",
            )
        if self.num_threads:
            import torch

            torch.set_num_threads(self.num_threads)
        self.model, self.tokenizer = await asyncio.to_thread(
            load_model, self.model_path, adapters=self.adapter_paths, dtype=self.dtype
        )

    async def check_health(self) -> None:
        if self.model is None:
            raise DependencyUnavailable("the transformers engine is not started")
        if self._worker is not None and self._worker.done() and not self._worker.cancelled():
            raise DependencyUnavailable(
                f"the transformers batch worker died: {self._worker.exception()!r}"
            )

    async def stop(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            self._worker = None

    async def generate(self, prompts: list[str], params: SamplingParams) -> list[Generation]:
        if not prompts:
            return []
        await self.start()
        self._ensure_worker()
        assert self._queue is not None
        future: asyncio.Future[list[Generation]] = asyncio.get_running_loop().create_future()
        await self._queue.put(_Pending(list(prompts), params, future))
        return await future

    def _ensure_worker(self) -> None:
        """One batching worker per event loop (tests and the CLI may run several loops)."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop or self._worker is None or self._worker.done():
            self._loop, self._queue, self._run_lock = loop, asyncio.Queue(), asyncio.Lock()
            self._worker = loop.create_task(self._batch_loop())

    async def _batch_loop(self) -> None:
        """Wait ``batch_wait_s`` after the first request, then run the oldest params group."""
        assert self._queue is not None
        held: list[_Pending] = []
        while True:
            if not held:
                held.append(await self._queue.get())
                if len(held[0].prompts) < self.max_batch_size and self.batch_wait_s > 0:
                    await asyncio.sleep(self.batch_wait_s)
            while not self._queue.empty():
                held.append(self._queue.get_nowait())
            group, held = self._take(held)
            await self._run_group(group)

    def _take(self, held: list[_Pending]) -> tuple[list[_Pending], list[_Pending]]:
        """The oldest request plus later ones with equal params, up to ``max_batch_size``
        prompts."""
        first, size = held[0], 0
        group: list[_Pending] = []
        rest: list[_Pending] = []
        for item in held:
            if not group or (
                item.params == first.params and size + len(item.prompts) <= self.max_batch_size
            ):
                group.append(item)
                size += len(item.prompts)
            else:
                rest.append(item)
        return group, rest

    async def _run_group(self, group: list[_Pending]) -> None:
        live = [p for p in group if not p.future.done()]  # callers that timed out are skipped
        if not live:
            return
        prompts = [text for p in live for text in p.prompts]
        assert self._run_lock is not None
        try:
            async with self._run_lock:
                results = await asyncio.to_thread(
                    generate_batch, self.model, self.tokenizer, prompts, live[0].params
                )
            self.batches_run += 1
        except Exception as exc:  # delivered to every caller of the batch
            for p in live:
                if not p.future.done():
                    p.future.set_exception(exc)
            return
        start = 0
        for p in live:
            if not p.future.done():
                p.future.set_result(results[start : start + len(p.prompts)])
            start += len(p.prompts)

    async def generate_stream(self, prompt: str, params: SamplingParams) -> AsyncIterator[str]:
        from transformers import StoppingCriteriaList, TextIteratorStreamer

        await self.start()
        self._ensure_worker()
        assert self._run_lock is not None
        tok = self.tokenizer
        enc = tok([prompt], return_tensors="pt").to(self.model.device)
        kwargs = _generate_kwargs(self.model, tok, params, int(enc["input_ids"].shape[1]))
        streamer = TextIteratorStreamer(
            tok, skip_prompt=True, skip_special_tokens=True, timeout=60.0
        )
        cancel = _Cancel()
        kwargs.update(streamer=streamer, stopping_criteria=StoppingCriteriaList([cancel]))
        holdback = max((len(s) for s in params.stop), default=1) - 1
        sent, text, counter = 0, "", _TokenCounter()
        async with self._run_lock:
            thread = threading.Thread(
                target=self._stream_worker, args=(enc, kwargs, params, counter), daemon=True
            )
            thread.start()
            try:
                iterator = iter(streamer)
                while True:
                    piece = await asyncio.to_thread(next, iterator, None)
                    if piece is None:
                        break
                    text += piece
                    cut, hit = truncate_at_stop(text, params.stop)
                    safe = len(cut) if hit else max(sent, len(text) - holdback)
                    if safe > sent:
                        yield TextDelta(cut[sent:safe] if hit else text[sent:safe])
                        sent = safe
                    if hit:
                        break
            finally:
                cancel.event.set()
                await asyncio.to_thread(thread.join, 60.0)
        if counter.error is not None:
            raise DependencyUnavailable(f"generation failed: {counter.error!r}")
        cut, hit = truncate_at_stop(text, params.stop)
        tail = cut[sent:]
        at_limit = counter.new_tokens >= kwargs["max_new_tokens"] and not counter.eos
        finish: FinishReason = "length" if (at_limit and not hit) else "stop"
        yield TextDelta(
            tail,
            finish_reason=finish,
            prompt_tokens=int(enc["input_ids"].shape[1]),
            completion_tokens=counter.new_tokens,
        )

    def _stream_worker(
        self, enc: Any, kwargs: dict[str, Any], params: SamplingParams, counter: "_TokenCounter"
    ) -> None:
        import torch

        try:
            if params.seed is not None:
                torch.manual_seed(params.seed)
            with torch.inference_mode(), adapter_context(self.model, params.lora):
                out = self.model.generate(**enc, **kwargs)
            new = out[0, enc["input_ids"].shape[1] :]
            eos = (new == self.tokenizer.eos_token_id).nonzero()
            counter.eos = bool(len(eos))
            counter.new_tokens = int(eos[0, 0]) if len(eos) else int(new.shape[0])
        except Exception as exc:  # surfaced to the consumer after the streamer ends
            counter.error = exc
            kwargs["streamer"].end()


@dataclass
class _TokenCounter:
    new_tokens: int = 0
    eos: bool = False
    error: BaseException | None = None
