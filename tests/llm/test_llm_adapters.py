"""Brand voices as LoRA adapters: the corpus styles, the trainer's adapters, and choosing one
per request.

The transformers backend here; ``test_llm_vllm_engine.py`` shows vLLM serving the same
adapters. The tiny checkpoint and adapters prove the voices were learned, not quality.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from serving.errors import InvalidRequest, ModelNotFound
from model_repo.training import corpus
from model_repo.training.adapters import (
    FINGERPRINT_FILE,
    VOICES,
    build_adapter,
    find_adapters,
    voice_examples,
)
from serving.llm.engine import SamplingParams
from serving.llm.prompts import STOP, parse_completion
from serving.llm.service import EmailWriter
from serving.llm.transformers_engine import TransformersEngine
from serving.protocol.openai import CompletionRequest
from serving.settings import LLMSettings

PLAYFUL = VOICES["playful"].signature


def held_out_prompts(n: int = 8) -> list[str]:
    return [e.prompt for e in corpus.generate(n, seed=5, heldout=True)]


def subjects(texts: list[str]) -> list[str]:
    return [parse_completion(t)[0] for t in texts]


def test_voices_reword_the_same_customers_and_offers() -> None:
    base = corpus.generate(30, seed=3)
    for voice in VOICES:
        styled = voice_examples(voice, 30, seed=3)
        assert [e.prompt for e in styled] == [
            e.prompt for e in base
        ]  # same customers, actions, prompts
        for ex in styled:
            subject, body = parse_completion(ex.completion)
            assert "{first_name}" in subject and body.startswith("Hi {first_name},")
            assert corpus.ACTIONS[ex.action].keyword in subject
            assert subject.startswith(PLAYFUL) == (voice == "playful")


def test_adapter_files_fingerprint_and_reuse(
    tiny_checkpoint: tuple[Path, dict], tiny_adapters: dict[str, Path]
) -> None:
    path = tiny_adapters["playful"]
    config = json.loads((path / "adapter_config.json").read_text())
    assert config["peft_type"] == "LORA" and config["r"] == 8
    assert {"q_proj", "v_proj", "down_proj"} <= set(config["target_modules"])
    assert (
        path / "adapter_model.safetensors"
    ).stat().st_size < 1_000_000  # an adapter, not a model copy
    stored = json.loads((path / FINGERPRINT_FILE).read_text())
    again = build_adapter(
        tiny_checkpoint[0], path, "playful", steps=stored["steps"], seed=0, rank=8
    )
    assert again["skipped"] is True and again["fingerprint"] == stored["fingerprint"]
    assert find_adapters(path.parent) == tiny_adapters
    with pytest.raises(ValueError):
        build_adapter(tiny_checkpoint[0], path.parent / "x", "gothic", steps=1)


def test_settings_find_built_voices_beside_explicit_adapters(
    tmp_path: Path, tiny_adapters: dict[str, Path]
) -> None:
    import shutil

    model = tmp_path / "email_writer"
    shutil.copytree(tiny_adapters["playful"], model / "adapters" / "playful")
    s = LLMSettings(model_path=model, lora_adapters={"vip": tiny_adapters["classic"]})
    assert s.adapters() == {
        "playful": model / "adapters" / "playful",
        "vip": tiny_adapters["classic"],
    }
    assert LLMSettings(model_path=model, voices=[]).adapters() == {}


def test_each_request_gets_the_voice_it_names(
    tiny_checkpoint: tuple[Path, dict], tiny_adapters: dict[str, Path]
) -> None:
    """The same prompts, greedy: the playful adapter opens with its signature, the others never
    do."""
    engine = TransformersEngine(tiny_checkpoint[0], adapters=tiny_adapters, num_threads=1)
    prompts = held_out_prompts()

    async def run() -> dict[str | None, list[str]]:
        out = {}
        for lora in (None, "classic", "playful", None):  # back to the base after an adapter
            gens = await engine.generate(
                prompts, SamplingParams(max_tokens=12, temperature=0.0, stop=STOP, lora=lora)
            )
            out[lora] = [g.text for g in gens]
        return out

    texts = asyncio.run(run())
    playful = sum(s.startswith(PLAYFUL) for s in subjects(texts["playful"]))
    assert playful >= len(prompts) - 1, texts["playful"]
    assert not any(
        s.startswith(PLAYFUL) for s in subjects(texts["classic"]) + subjects(texts[None])
    )
    assert (
        texts["classic"] != texts[None]
    )  # an adapter trained on the house style still changes the weights
    with pytest.raises(InvalidRequest) as err:
        asyncio.run(engine.generate(prompts[:1], SamplingParams(lora="gothic")))
    assert err.value.field == "adapter"


def test_writer_names_the_adapter_and_lists_it(
    tiny_checkpoint: tuple[Path, dict], tiny_adapters: dict[str, Path]
) -> None:
    settings = LLMSettings(
        backend="transformers",
        model_path=tiny_checkpoint[0],
        num_threads=1,
        voices=[],
        lora_adapters=tiny_adapters,
        max_tokens=24,
        temperature=0.0,
        timeout_s=60,
    )
    writer = EmailWriter(settings)
    assert [m.id for m in writer.models().data] == ["email_writer", "classic", "playful"]
    facts = {
        "customer_id": 3,
        "first_name": "Nora",
        "plan_name": "plus",
        "region_name": "europe",
        "recency_days": 40,
        "orders_365d": 3,
        "spend_365d": 120.0,
    }

    async def run() -> tuple:
        voiced = await writer.write(
            facts, "free_shipping", {"churn_probability": 0.7}, lora="playful"
        )
        plain = await writer.write(facts, "free_shipping", {"churn_probability": 0.7})
        done = await writer.complete(
            CompletionRequest(
                model="playful", prompt=held_out_prompts(1)[0], max_tokens=8, temperature=0
            )
        )
        return voiced, plain, done

    voiced, plain, done = asyncio.run(run())
    assert (voiced.adapter, plain.adapter) == ("playful", None)
    assert (voiced.backend, voiced.to_dict()["adapter"]) == ("transformers", "playful")
    assert done.model == "playful" and done.choices[0].text.strip().startswith(
        PLAYFUL
    )  # chosen by model name
    with pytest.raises(InvalidRequest):
        asyncio.run(writer.write(facts, "free_shipping", {}, lora="gothic"))
    with pytest.raises(ModelNotFound):
        asyncio.run(writer.complete(CompletionRequest(model="gothic", prompt="x")))
