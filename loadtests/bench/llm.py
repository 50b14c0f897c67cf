"""Benchmark of the LLM engines alone (no HTTP, no Ray): vLLM against transformers.

Each backend gets the same held-out customer prompts, greedy (so both write the same
text, the same work), at each concurrency: first as whole answers (``generate``: tokens/s
and latency p50/p99, what /v1/reengage does), then streamed (``generate_stream``: time
to the first text, what an OpenAI streaming client sees). Backends run one after the
other, each stopped before the next starts, so neither competes with the other for the
cores. The HTTP figure is measured separately against the running application.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from serving.errors import DependencyUnavailable
from model_repo.training import corpus
from serving.llm.backends import make_engine
from serving.llm.engine import LLMEngine, SamplingParams
from serving.llm.prompts import STOP
from serving.settings import LLMSettings

COLUMNS = (
    "backend",
    "concurrency",
    "tokens_per_s",
    "p50_ms",
    "p99_ms",
    "stream_tokens_per_s",
    "ttft_p50_ms",
    "ttft_p99_ms",
    "mean_tokens",
)


def run_llm_bench(
    settings: LLMSettings,
    console: Any = None,
    *,
    requests: int = 32,
    concurrency: Sequence[int] = (1, 8, 32),
    backends: Sequence[str] = ("vllm", "transformers"),
) -> dict[str, Any]:
    """Measure each backend on the same prompts; returns a JSON-able dict (sync: runs its own
    event loop)."""
    return asyncio.run(_bench(settings, console, requests, tuple(concurrency), tuple(backends)))


async def _bench(
    settings: LLMSettings,
    console: Any,
    requests: int,
    concurrency: tuple[int, ...],
    backends: tuple[str, ...],
) -> dict[str, Any]:
    prompts = [e.prompt for e in corpus.generate(requests, seed=123, heldout=True)]
    params = SamplingParams(max_tokens=settings.max_tokens, temperature=0.0, stop=STOP)
    rows: list[dict[str, Any]] = []
    started: dict[str, Any] = {}
    for backend in backends:
        engine = make_engine(settings.model_copy(update={"backend": backend}))
        t0 = time.perf_counter()
        try:
            await engine.start()
        except DependencyUnavailable as exc:
            _say(console, f"[yellow]{backend}: not measured: {exc}[/yellow]")
            started[backend] = {"error": str(exc)}
            continue
        started[backend] = {"start_s": round(time.perf_counter() - t0, 2)}
        try:
            await engine.generate(prompts[:2], params)  # warm-up
            for c in concurrency:
                _say(console, f"LLM bench: {backend}, {requests} prompts, concurrency {c}")
                whole = await _run(engine, prompts, params, c, stream=False)
                streamed = await _run(engine, prompts, params, c, stream=True)
                rows.append(
                    {
                        "backend": backend,
                        "concurrency": c,
                        **whole,
                        "stream_tokens_per_s": streamed["tokens_per_s"],
                        "stream_p50_ms": streamed["p50_ms"],
                        "ttft_p50_ms": streamed["ttft_p50_ms"],
                        "ttft_p99_ms": streamed["ttft_p99_ms"],
                    }
                )
        finally:
            await engine.stop()
    out = {
        "prompts": requests,
        "max_tokens": settings.max_tokens,
        "temperature": 0.0,
        "engines": started,
        "rows": rows,
    }
    _table(console, rows)
    _say(console, json.dumps(out))  # the same figures, machine-readable
    return out


async def _run(
    engine: LLMEngine, prompts: list[str], params: SamplingParams, concurrency: int, *, stream: bool
) -> dict[str, float]:
    """Each prompt as its own request, ``concurrency`` in flight; latency (and first text) per
    request."""
    latencies: list[float] = []
    firsts: list[float] = []
    tokens = 0
    sem = asyncio.Semaphore(concurrency)

    async def one(prompt: str) -> None:
        nonlocal tokens
        async with sem:
            t = time.perf_counter()
            if stream:
                first = None
                async for delta in engine.generate_stream(prompt, params):
                    if first is None and delta:
                        first = time.perf_counter() - t
                    tokens += getattr(delta, "completion_tokens", None) or 0
                firsts.append(first if first is not None else time.perf_counter() - t)
            else:
                [gen] = await engine.generate([prompt], params)
                tokens += gen.completion_tokens
            latencies.append(time.perf_counter() - t)

    t0 = time.perf_counter()
    await asyncio.gather(*(one(p) for p in prompts))
    wall = time.perf_counter() - t0
    lat = np.asarray(latencies) * 1000
    out = {
        "tokens_per_s": round(tokens / wall, 1),
        "mean_tokens": round(tokens / len(prompts), 1),
        "p50_ms": round(float(np.percentile(lat, 50)), 1),
        "p99_ms": round(float(np.percentile(lat, 99)), 1),
    }
    if stream:
        ttft = np.asarray(firsts) * 1000
        out.update(
            ttft_p50_ms=round(float(np.percentile(ttft, 50)), 1),
            ttft_p99_ms=round(float(np.percentile(ttft, 99)), 1),
        )
    return out


def _table(console: Any, rows: list[dict[str, Any]]) -> None:
    if console is None:
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(
        title="email writer engines: same prompts, greedy (tokens/s and latency: whole answers; "
        "TTFT: streamed)"
    )
    for col in COLUMNS:
        table.add_column(col, justify="left" if col == "backend" else "right", no_wrap=True)
    for row in rows:
        table.add_row(*(str(row[c]) for c in COLUMNS))
    wide = Console(
        file=console.file, width=max(console.width, 160)
    )  # every column whole, also when piped
    wide.print(table)


def _say(console: Any, message: Any) -> None:
    if console is not None:
        console.print(message)
