"""The vLLM engine without vLLM: importable, argument mapping, clear failure on start."""

from __future__ import annotations

import asyncio
import importlib.util
from pathlib import Path

import pytest

from serving.errors import DependencyUnavailable, InvalidRequest
from serving.llm.backends import make_engine, resolve_backend
from serving.llm.engine import SamplingParams
from serving.llm.vllm_engine import VLLMEngine, engine_args, finish_reason, lora_kwargs, sampling_kwargs
from serving.settings import LLMSettings

no_vllm = pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vllm is installed here")


def test_engine_args_map_settings() -> None:
    s = LLMSettings(model_path=Path("/m/ew"), gpu_memory_utilization=0.3, max_model_len=512, dtype="float16",
                    vllm_engine_kwargs={"enforce_eager": True})
    args = engine_args(s)
    assert args["model"] == args["tokenizer"] == "/m/ew"
    assert args["served_model_name"] == ["email_writer"]
    assert (args["gpu_memory_utilization"], args["max_model_len"], args["dtype"]) == (0.3, 512, "float16")
    assert args["enforce_eager"] is True and "enable_lora" not in args


def test_lora_adapters_enable_lora_and_map_by_name() -> None:
    s = LLMSettings(lora_adapters={"winter": Path("/a/winter"), "vip": Path("/a/vip")}, max_lora_rank=8)
    args = engine_args(s)
    assert (args["enable_lora"], args["max_loras"], args["max_lora_rank"]) == (True, 2, 8)
    assert lora_kwargs(s, "vip") == {"lora_name": "vip", "lora_int_id": 2, "lora_path": "/a/vip"}
    assert lora_kwargs(s, None) is None
    with pytest.raises(InvalidRequest):
        lora_kwargs(s, "summer")


def test_sampling_params_mapping() -> None:
    p = SamplingParams(max_tokens=40, temperature=0.0, top_p=0.9, stop=("<END>",), seed=3)
    assert sampling_kwargs(p, stream=False) == {"n": 1, "max_tokens": 40, "temperature": 0.0, "top_p": 0.9,
                                                "stop": ["<END>"], "seed": 3, "output_kind": "FINAL_ONLY"}
    assert sampling_kwargs(SamplingParams(), stream=True)["output_kind"] == "DELTA"
    assert sampling_kwargs(SamplingParams(), stream=True)["stop"] is None
    assert (finish_reason("length"), finish_reason("stop"), finish_reason("abort")) == ("length", "stop", "stop")


@no_vllm
def test_start_without_vllm_says_how_to_fix_it() -> None:
    engine = VLLMEngine(LLMSettings(backend="vllm"))
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
