"""The vLLM engine's argument mapping (checked against vLLM 0.32's fields), and a clear failure
without vLLM.

The engine itself runs in ``test_llm_vllm_engine.py`` (where vLLM is installed)."""

from __future__ import annotations

import asyncio
import importlib.util
from pathlib import Path

import pytest

from serving.errors import DependencyUnavailable, InvalidRequest
from serving.llm.backends import make_engine, resolve_backend
from serving.llm.engine import SamplingParams
from serving.llm.vllm_engine import (
    CPU_KV_CACHE_BYTES,
    VLLMEngine,
    engine_args,
    finish_reason,
    lora_kwargs,
    sampling_kwargs,
)
from serving.settings import LLMSettings

no_vllm = pytest.mark.skipif(
    importlib.util.find_spec("vllm") is not None, reason="vllm is installed here"
)


def test_engine_args_map_settings() -> None:
    s = LLMSettings(
        model_path=Path("/m/ew"),
        gpu_memory_utilization=0.3,
        max_model_len=512,
        dtype="float16",
        vllm_engine_kwargs={"max_num_seqs": 64},
    )
    gpu = engine_args(s, cuda=True)
    assert gpu["model"] == gpu["tokenizer"] == "/m/ew"
    assert gpu["served_model_name"] == ["email_writer"]
    assert (gpu["gpu_memory_utilization"], gpu["max_model_len"], gpu["dtype"]) == (
        0.3,
        512,
        "float16",
    )
    assert gpu["max_num_seqs"] == 64 and "enable_lora" not in gpu
    assert (
        "kv_cache_memory_bytes" not in gpu and "enforce_eager" not in gpu
    )  # a GPU sizes and compiles itself
    cpu = engine_args(
        s, cuda=False
    )  # the CPU build: a bounded KV cache, eager (no minutes of torch.compile)
    assert cpu["kv_cache_memory_bytes"] == CPU_KV_CACHE_BYTES and cpu["enforce_eager"] is True
    auto = LLMSettings(model_path=Path("/m/ew"), kv_cache_memory_bytes=64 << 20)
    assert (
        engine_args(auto, cuda=False)["dtype"] == "float32"
        and engine_args(auto, cuda=True)["dtype"] == "bfloat16"
    )
    assert engine_args(auto, cuda=False)["kv_cache_memory_bytes"] == 64 << 20


def test_engine_args_are_fields_of_vllms_engine_args() -> None:
    """Every key we pass is a field of ``AsyncEngineArgs`` in the vLLM installed here."""
    arg_utils = pytest.importorskip("vllm.engine.arg_utils")
    import dataclasses

    fields = {f.name for f in dataclasses.fields(arg_utils.AsyncEngineArgs)}
    s = LLMSettings(
        model_path=Path("/m/ew"),
        max_model_len=256,
        kv_cache_memory_bytes=1 << 26,
        voices=[],
        lora_adapters={"a": Path("/a")},
    )
    for cuda in (False, True):
        assert set(engine_args(s, cuda=cuda)) <= fields


def test_lora_adapters_enable_lora_and_map_by_name() -> None:
    s = LLMSettings(
        voices=[],
        lora_adapters={"winter": Path("/a/winter"), "vip": Path("/a/vip")},
        max_lora_rank=8,
    )
    args = engine_args(s, cuda=True)
    assert (args["enable_lora"], args["max_loras"], args["max_lora_rank"]) == (True, 2, 8)
    assert engine_args(s.model_copy(update={"max_loras": 1}), cuda=True)["max_loras"] == 1
    # the CPU build: one spare, never-filled slot for requests without adapter (vLLM's slot -1)
    assert engine_args(s, cuda=False)["max_loras"] == 3
    assert engine_args(s.model_copy(update={"max_loras": 1}), cuda=False)["max_loras"] == 3
    assert lora_kwargs(s, "vip") == {"lora_name": "vip", "lora_int_id": 2, "lora_path": "/a/vip"}
    assert lora_kwargs(s, None) is None
    with pytest.raises(InvalidRequest):
        lora_kwargs(s, "summer")


def test_sampling_params_mapping() -> None:
    p = SamplingParams(max_tokens=40, temperature=0.0, top_p=0.9, stop=("<END>",), seed=3)
    assert sampling_kwargs(p, stream=False) == {
        "n": 1,
        "max_tokens": 40,
        "temperature": 0.0,
        "top_p": 0.9,
        "stop": ["<END>"],
        "seed": 3,
        "output_kind": "FINAL_ONLY",
    }
    assert sampling_kwargs(SamplingParams(), stream=True)["output_kind"] == "DELTA"
    assert sampling_kwargs(SamplingParams(), stream=True)["stop"] is None
    assert (finish_reason("length"), finish_reason("stop"), finish_reason("abort")) == (
        "length",
        "stop",
        "stop",
    )


@no_vllm
def test_start_without_vllm_says_how_to_fix_it(tiny_checkpoint: tuple[Path, dict]) -> None:
    engine = VLLMEngine(LLMSettings(backend="vllm", model_path=tiny_checkpoint[0]))
    with pytest.raises(DependencyUnavailable) as err:
        asyncio.run(engine.start())
    assert "vLLM is not installed" in str(err.value)
    with pytest.raises(DependencyUnavailable):
        asyncio.run(engine.check_health())


@no_vllm
def test_auto_backend_is_transformers_without_vllm() -> None:
    assert resolve_backend(LLMSettings()) == "transformers"
    assert make_engine(LLMSettings()).backend == "transformers"
    assert make_engine(LLMSettings(backend="vllm")).backend == "vllm"
    assert make_engine(LLMSettings(backend="remote")).backend == "remote"
