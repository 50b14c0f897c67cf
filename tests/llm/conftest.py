"""The writer's settings and brand-voice adapters over the tiny email-writer checkpoint
(``tiny_checkpoint``, in tests/conftest.py: the schema test serves it too).

Tiny (2 layers, 64 wide, 40 steps): it proves the pipeline (tokenizer, training,
HF files, loading, batched and streamed generation), not writing quality.
"""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def llm_settings(tiny_checkpoint: tuple[Path, dict]):
    from serving.settings import LLMSettings

    return LLMSettings(
        backend="transformers",
        model_path=tiny_checkpoint[0],
        num_threads=1,
        voices=[],
        max_tokens=24,
        temperature=0.0,
        timeout_s=60,
    )


ADAPTER_STEPS = (
    200  # enough for the playful voice's opening ("Psst,") on the tiny base (120 was not)
)


@pytest.fixture(scope="session")
def tiny_adapters(
    tiny_checkpoint: tuple[Path, dict], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Path]:
    """Both brand voices as LoRA adapters of the tiny checkpoint, trained by the real trainer."""
    from model_repo.training.adapters import build_adapter

    root = tmp_path_factory.mktemp("adapters")
    for voice in ("classic", "playful"):
        build_adapter(tiny_checkpoint[0], root / voice, voice, steps=ADAPTER_STEPS, seed=0, rank=8)
    return {"classic": root / "classic", "playful": root / "playful"}
