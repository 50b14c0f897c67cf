"""The trainer's output: an HF checkpoint transformers loads, fingerprinted, deterministic."""

from __future__ import annotations

import json
from pathlib import Path

from model_repo.training.llm import FINGERPRINT_FILE, build_checkpoint


def test_checkpoint_has_the_hugging_face_files(tiny_checkpoint: tuple[Path, dict]) -> None:
    out, metrics = tiny_checkpoint
    for name in (
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
        "generation_config.json",
        FINGERPRINT_FILE,
    ):
        assert (out / name).is_file(), name
    config = json.loads((out / "config.json").read_text())
    # Llama: the architecture vLLM serves LoRA adapters on (its GPT-2 has none)
    assert config["architectures"] == ["LlamaForCausalLM"]
    assert (
        config["num_hidden_layers"] == metrics["size"]["n_layer"]
        and config["tie_word_embeddings"] is True
    )
    assert (
        json.loads((out / "tokenizer_config.json").read_text())["tokenizer_class"]
        == "PreTrainedTokenizerFast"
    )
    assert metrics["skipped"] is False and 0.0 <= metrics["heldout_action_mention_rate"] <= 1.0
    assert metrics["final_loss"] < 6.0  # it learned something from ~6.2 (ln 512)


def test_loads_with_auto_classes(tiny_checkpoint: tuple[Path, dict]) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out, _ = tiny_checkpoint
    model = AutoModelForCausalLM.from_pretrained(out)
    tok = AutoTokenizer.from_pretrained(out)
    assert model.config.eos_token_id == tok.eos_token_id == tok.pad_token_id
    assert (
        tok.decode(tok("Subject: Ana")["input_ids"]) == "Subject: Ana"
    )  # byte-level BPE round-trips


def test_same_inputs_skip_the_rebuild(tiny_checkpoint: tuple[Path, dict]) -> None:
    out, first = tiny_checkpoint
    again = build_checkpoint(out, steps=40, seed=0, size=first["size"], heldout=4)
    assert again["skipped"] is True and again["fingerprint"] == first["fingerprint"]


def test_deterministic_by_seed_and_lora_fine_tune_of_a_base(
    tiny_checkpoint: tuple[Path, dict], tmp_path: Path
) -> None:
    base, _ = tiny_checkpoint
    a = build_checkpoint(tmp_path / "a", base_model=base, lora=True, steps=3, seed=1, heldout=1)
    b = build_checkpoint(tmp_path / "b", base_model=base, lora=True, steps=3, seed=1, heldout=1)
    assert a["final_loss"] == b["final_loss"]
    assert (tmp_path / "a" / "lora" / "adapter_config.json").is_file()
    assert (tmp_path / "a" / "model.safetensors").read_bytes() == (
        tmp_path / "b" / "model.safetensors"
    ).read_bytes()
    from transformers import AutoModelForCausalLM

    merged = AutoModelForCausalLM.from_pretrained(
        tmp_path / "a"
    )  # merged weights load without peft
    assert not any("lora" in n for n, _ in merged.named_parameters())


def test_full_fine_tune_of_a_base_model(tiny_checkpoint: tuple[Path, dict], tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM

    base, _ = tiny_checkpoint
    metrics = build_checkpoint(tmp_path / "ft", base_model=base, steps=2, seed=0, heldout=1)
    assert metrics["base_model"] == str(base) and not (tmp_path / "ft" / "lora").exists()
    tuned = AutoModelForCausalLM.from_pretrained(tmp_path / "ft")
    original = AutoModelForCausalLM.from_pretrained(base)
    assert any((a != b).any() for a, b in zip(tuned.parameters(), original.parameters()))
