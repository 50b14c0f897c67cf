"""A tiny email-writer checkpoint trained once per session by the real trainer.

Tiny (2 layers, 64 wide, 40 steps): it proves the pipeline (tokenizer, training,
HF files, loading, batched and streamed generation), not writing quality.
"""

from __future__ import annotations

from pathlib import Path

import pytest

TINY = {"vocab_size": 512, "n_positions": 256, "n_embd": 64, "n_layer": 2, "n_head": 2}


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    from model_repo.training.llm import build_checkpoint

    out = tmp_path_factory.mktemp("llm") / "email_writer"
    metrics = build_checkpoint(out, steps=40, seed=0, size=TINY, heldout=4)
    return out, metrics


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
