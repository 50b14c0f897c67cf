"""The transformers engine and the EmailWriter on a real (tiny) checkpoint."""

from __future__ import annotations

import asyncio

import pytest

from serving.errors import DependencyUnavailable, ModelNotFound
from serving.llm.engine import SamplingParams
from serving.llm.prompts import build_prompt
from serving.llm.service import EmailWriter
from serving.llm.transformers_engine import TransformersEngine
from serving.protocol.openai import CompletionRequest
from serving.settings import LLMSettings

FACTS = {
    "customer_id": 7,
    "first_name": "Ana",
    "plan_name": "Plus",
    "region_name": "West",
    "recency_days": 40,
}
GREEDY = SamplingParams(max_tokens=12, temperature=0.0)


def prompts(n: int) -> list[str]:
    actions = ["discount_offer", "free_shipping", "content_digest", "winback_email"]
    names = ["Ana", "Benedikt", "Jo", "Maximiliane"]  # different lengths: left padding matters
    return [
        build_prompt({**FACTS, "first_name": names[i % 4]}, actions[i % 4], {}) for i in range(n)
    ]


def test_concurrent_requests_share_one_batched_call_and_match_single_runs(
    llm_settings: LLMSettings,
) -> None:
    async def run() -> tuple[list, list, int]:
        engine = TransformersEngine.from_settings(llm_settings)
        await engine.start()
        singles = [(await engine.generate([p], GREEDY))[0] for p in prompts(3)]
        before = engine.batches_run
        batched = await asyncio.gather(*(engine.generate([p], GREEDY) for p in prompts(3)))
        return singles, [b[0] for b in batched], engine.batches_run - before

    singles, batched, calls = asyncio.run(run())
    assert calls == 1
    assert [g.text for g in batched] == [g.text for g in singles]
    assert [g.prompt_tokens for g in batched] == [g.prompt_tokens for g in singles]
    assert len({g.prompt_tokens for g in singles}) > 1
    assert all(g.completion_tokens <= 12 for g in batched)


def test_different_params_are_not_mixed_in_one_batch(llm_settings: LLMSettings) -> None:
    async def run() -> tuple[list, int]:
        engine = TransformersEngine.from_settings(llm_settings)
        await engine.start()
        out = await asyncio.gather(
            engine.generate(prompts(1), SamplingParams(max_tokens=3, temperature=0.0)),
            engine.generate(prompts(1), SamplingParams(max_tokens=9, temperature=0.0)),
        )
        return out, engine.batches_run

    (short, long_), calls = asyncio.run(run())
    assert calls == 2
    assert short[0].completion_tokens <= 3 and long_[0].completion_tokens <= 9
    assert long_[0].text.startswith(short[0].text)


def test_stop_sequences_cut_the_text(llm_settings: LLMSettings) -> None:
    engine = TransformersEngine.from_settings(llm_settings)
    [free] = asyncio.run(
        engine.generate(prompts(1), SamplingParams(max_tokens=20, temperature=0.0))
    )
    stop = free.text.strip()[:3]
    assert stop
    [cut] = asyncio.run(
        engine.generate(prompts(1), SamplingParams(max_tokens=20, temperature=0.0, stop=(stop,)))
    )
    assert stop not in cut.text and free.text.startswith(cut.text) and cut.finish_reason == "stop"


def test_stream_concatenates_to_the_batched_answer(llm_settings: LLMSettings) -> None:
    engine = TransformersEngine.from_settings(llm_settings)

    async def run() -> tuple[str, list]:
        [whole] = await engine.generate(prompts(1), GREEDY)
        deltas = [d async for d in engine.generate_stream(prompts(1)[0], GREEDY)]
        return whole.text, deltas

    whole, deltas = asyncio.run(run())
    assert "".join(deltas) == whole
    assert deltas[-1].finish_reason in {"stop", "length"} and deltas[-1].completion_tokens <= 12
    assert all(d.finish_reason is None for d in deltas[:-1])


def test_missing_checkpoint_is_dependency_unavailable(tmp_path) -> None:
    with pytest.raises(DependencyUnavailable) as err:
        asyncio.run(TransformersEngine(tmp_path / "nope").start())
    assert "reengage build" in str(err.value)


def test_writer_end_to_end_on_the_real_engine(llm_settings: LLMSettings) -> None:
    writer = EmailWriter(llm_settings)

    async def run():
        await writer.start()
        await writer.check_health()
        return await writer.write(FACTS, "free_shipping", {"churn_probability": 0.9}, max_tokens=40)

    result = asyncio.run(run())
    assert result.backend == "transformers" and result.model == "email_writer" and result.written
    assert result.subject and "free shipping" in f"{result.subject} {result.body}".lower()
    assert result.body.endswith("Unsubscribe: https://example.com/unsubscribe?customer=7")
    assert result.prompt_tokens > 20 and 0 < result.completion_tokens <= 40
    assert result.fallback == (
        result.fallback_reason is not None
    )  # tiny model: either way, but marked


def test_completions_and_stream_on_the_real_engine(llm_settings: LLMSettings) -> None:
    writer = EmailWriter(llm_settings)
    req = CompletionRequest(model="email_writer", prompt=prompts(2), max_tokens=6, temperature=0)

    async def run():
        full = await writer.complete(req)
        streamed = CompletionRequest.model_validate(
            {**req.model_dump(), "stream": True, "stream_options": {"include_usage": True}}
        )
        chunks = [c async for c in writer.complete_stream(streamed)]
        return full, chunks

    full, chunks = asyncio.run(run())
    assert [c.index for c in full.choices] == [0, 1]
    assert full.usage.total_tokens == full.usage.prompt_tokens + full.usage.completion_tokens
    for i in (0, 1):
        streamed = "".join(
            c.choices[0].text for c in chunks if c.choices and c.choices[0].index == i
        )
        assert streamed == full.choices[i].text
    finals = [
        c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason
    ]
    assert finals == [c.finish_reason for c in full.choices]
    assert (
        chunks[-1].choices == []
        and chunks[-1].usage.completion_tokens == full.usage.completion_tokens
    )
    assert chunks[-1].usage.prompt_tokens == full.usage.prompt_tokens
    with pytest.raises(ModelNotFound):
        asyncio.run(writer.complete(CompletionRequest(model="gpt-4", prompt="x")))


def test_bench_reports_throughput_latency_and_first_token(llm_settings: LLMSettings) -> None:
    import importlib.util

    from loadtests.bench.llm import run_llm_bench

    out = run_llm_bench(
        llm_settings, requests=4, concurrency=(1, 2), backends=("vllm", "transformers")
    )
    rows = {(r["backend"], r["concurrency"]): r for r in out["rows"]}
    assert {("transformers", 1), ("transformers", 2)} <= set(rows) and out["prompts"] == 4
    for row in rows.values():
        assert row["tokens_per_s"] > 0 and row["stream_tokens_per_s"] > 0
        assert row["p99_ms"] >= row["p50_ms"] > 0
        # each request's first text comes before its last: so do the percentiles
        assert (
            0 < row["ttft_p50_ms"] <= row["ttft_p99_ms"]
            and row["ttft_p50_ms"] <= row["stream_p50_ms"]
        )
    if importlib.util.find_spec("vllm") is None:  # a backend that cannot start is named, not fatal
        assert "vLLM is not installed" in out["engines"]["vllm"]["error"]
    else:
        assert ("vllm", 2) in rows
