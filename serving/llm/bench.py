"""Benchmark of the LLM engine alone (no HTTP, no Ray): tokens/s and latency percentiles.

Two loads on held-out customer prompts: one request at a time (latency of a single
email), then ``concurrency`` requests at once (what the engine's batching buys). The
HTTP figure is measured separately against the running application.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import numpy as np

from serving.llm import corpus
from serving.llm.backends import make_engine
from serving.llm.engine import SamplingParams
from serving.llm.prompts import ACTIONS, STOP
from serving.llm.service import EmailRequest, EmailWriter
from serving.settings import LLMSettings


def run_llm_bench(settings: LLMSettings, console: Any = None, *, requests: int = 24,
                  concurrency: int = 8) -> dict[str, Any]:
    """Measure the configured engine; returns a JSON-able dict of figures (sync: runs its own loop)."""
    return asyncio.run(_bench(settings, console, requests, concurrency))


async def _bench(settings: LLMSettings, console: Any, requests: int, concurrency: int) -> dict[str, Any]:
    engine = make_engine(settings)
    t0 = time.perf_counter()
    await engine.start()
    start_s = time.perf_counter() - t0
    examples = corpus.generate(requests, seed=123, heldout=True)
    prompts = [e.prompt for e in examples]
    params = SamplingParams(max_tokens=settings.max_tokens, temperature=settings.temperature, top_p=settings.top_p,
                            stop=STOP, seed=0)
    await engine.generate(prompts[:1], params)  # warm-up
    _say(console, f"LLM bench: {engine.backend} engine, {requests} prompts, sequential then x{concurrency}")
    sequential = await _run(engine, prompts, params, 1)
    concurrent = await _run(engine, prompts, params, concurrency)
    writer = EmailWriter(settings, engine)
    results = await writer.write_many([EmailRequest(e.facts, e.action, {}) for e in examples])
    await engine.stop()
    out = {
        "backend": engine.backend, "model": engine.model_name, "start_s": round(start_s, 2),
        "prompts": requests, "max_tokens": settings.max_tokens, "temperature": settings.temperature,
        "sequential": sequential, f"concurrency_{concurrency}": concurrent,
        "fallback_rate": round(float(np.mean([r.fallback for r in results])), 4),
        "subject_action_mention_rate": round(float(np.mean(
            [ACTIONS[e.action].keyword.lower() in r.subject.lower() for e, r in zip(examples, results)])), 4),
    }
    _say(console, out)
    return out


async def _run(engine: Any, prompts: list[str], params: SamplingParams, concurrency: int) -> dict[str, float]:
    """Each prompt as its own request, ``concurrency`` in flight; latency per request."""
    latencies: list[float] = []
    tokens = 0
    sem = asyncio.Semaphore(concurrency)

    async def one(prompt: str) -> None:
        nonlocal tokens
        async with sem:
            t = time.perf_counter()
            [gen] = await engine.generate([prompt], params)
            latencies.append(time.perf_counter() - t)
            tokens += gen.completion_tokens

    t0 = time.perf_counter()
    await asyncio.gather(*(one(p) for p in prompts))
    wall = time.perf_counter() - t0
    lat = np.asarray(latencies) * 1000
    return {
        "requests_per_s": round(len(prompts) / wall, 2), "tokens_per_s": round(tokens / wall, 1),
        "mean_completion_tokens": round(tokens / len(prompts), 1),
        "p50_ms": round(float(np.percentile(lat, 50)), 1), "p99_ms": round(float(np.percentile(lat, 99)), 1),
    }


def _say(console: Any, message: Any) -> None:
    if console is not None:
        console.print(message)
