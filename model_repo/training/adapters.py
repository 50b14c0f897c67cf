"""Brand voices as LoRA adapters over one email-writer checkpoint.

vLLM serves several LoRA adapters over one base model and picks one per request
(``LoRARequest``), so a second brand voice costs a few MB of adapter, not a second
model. Each voice here is a style of the generated corpus (same customers, facts and
offers; different wording), and ``build_adapter`` fine-tunes one LoRA adapter per voice
on the base checkpoint with the project's own trainer (``llm._load_base`` and
``llm._train_loop``). Only the adapter is saved, in PEFT's format
(``adapter_config.json`` + ``adapter_model.safetensors``), which both vLLM and peft load.

Kept apart from ``llm.py`` and ``corpus.py`` on purpose: those are part of the base
checkpoint's fingerprint, and a new voice must not retrain the base.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import shutil
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from model_repo.training import corpus
from serving.llm.prompts import ACTIONS, format_completion, segment

ADAPTER_CONFIG = "adapter_config.json"
FINGERPRINT_FILE = "reengage_adapter.json"
ADAPTER_EXAMPLES = 2000


@dataclass(frozen=True)
class Voice:
    """How a voice words an email: subjects per risk segment, and closing lines."""

    subjects: dict[str, tuple[str, ...]]
    closers: tuple[str, ...]
    signature: str | None = None  # text every subject of this voice starts with (tests check it)


PLAYFUL_SUBJECTS = (
    "Psst, {name}! {kw} inside",
    "Psst, {name}! Grab {kw}",
    "Psst, {name}! {kw}, just for you",
)
VOICES: dict[str, Voice] = {
    # the base corpus's own wording: an adapter trained on it keeps the house style
    "classic": Voice(corpus.SUBJECTS, corpus.CLOSERS),
    "playful": Voice(
        {risk: PLAYFUL_SUBJECTS for risk in corpus.SUBJECTS},
        ("Cheers!", "Catch you soon!", "High five!"),
        signature="Psst,",
    ),
}


def voice_examples(voice: str, n: int, seed: int) -> list[corpus.Example]:
    """``n`` corpus examples (the base corpus's customers and actions) reworded in ``voice``."""
    spec = VOICES[voice]
    rng = np.random.default_rng(seed + 7)
    out = []
    for ex in corpus.generate(n, seed):
        action = ACTIONS[ex.action]
        risk = segment(ex.facts).split()[0]
        fill = {
            "name": "{first_name}",
            "plan": "{plan_name}",
            "region": "{region_name}",
            "recency": "{recency_days}",
            "orders": "{orders_365d}",
            "kw": action.keyword,
            "offer": action.offer,
        }
        subjects = spec.subjects[risk]
        subject = subjects[int(rng.integers(len(subjects)))].format(**fill)
        body = " ".join(
            [
                f"Hi {fill['name']},",
                corpus.OPENERS[risk].format(**fill),
                corpus.OFFER_LINES[int(rng.integers(len(corpus.OFFER_LINES)))].format(**fill),
                spec.closers[int(rng.integers(len(spec.closers)))],
            ]
        )
        out.append(replace(ex, completion=format_completion(subject, body)))
    return out


def build_adapter(
    base: Path,
    out_dir: Path,
    voice: str,
    *,
    steps: int = 100,
    seed: int = 0,
    lr: float = 3e-3,
    rank: int = 8,
    console: Any = None,
    threads: int | None = None,
) -> dict[str, Any]:
    """Train (or reuse) the LoRA adapter of ``voice`` on the checkpoint ``base``.

    Skipped when ``out_dir`` holds an adapter built from the same base checkpoint, voice,
    code and parameters. A LoRA learning rate well above full fine-tuning's (3e-3) lets
    a few dozen steps move a small model to the new wording.
    """
    if voice not in VOICES:
        raise ValueError(f"unknown voice {voice!r}; known: {sorted(VOICES)}")
    base, out_dir = Path(base), Path(out_dir)
    params = {"voice": voice, "steps": steps, "seed": seed, "lr": lr, "rank": rank}
    fingerprint = _fingerprint(base, params)
    stored = _stored(out_dir, fingerprint)
    if stored is not None:
        _say(console, f"LoRA adapter {voice!r} up to date in {out_dir}")
        return {**stored, "skipped": True}

    import torch

    from model_repo.training import llm as train

    previous = torch.get_num_threads()
    torch.set_num_threads(
        threads or (1 if (os.cpu_count() or 1) <= 2 else min(8, os.cpu_count() or 1))
    )
    try:
        torch.manual_seed(seed)
        t0 = time.perf_counter()
        model, tokenizer = _lora_model(base, rank)
        loss = train._train_loop(
            model,
            tokenizer,
            voice_examples(voice, ADAPTER_EXAMPLES, seed),
            steps=steps,
            lr=lr,
            seed=seed,
            console=console,
        )
        tmp = out_dir.with_name(out_dir.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        model.save_pretrained(tmp)  # the adapter only (PEFT format)
        metrics = {
            "fingerprint": fingerprint,
            "base": str(base),
            **params,
            "final_loss": round(loss, 4),
            "build_seconds": round(time.perf_counter() - t0, 1),
        }
        (tmp / FINGERPRINT_FILE).write_text(json.dumps(metrics, indent=2))
        shutil.rmtree(out_dir, ignore_errors=True)
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        tmp.rename(out_dir)
    finally:
        torch.set_num_threads(previous)
    _say(
        console, f"LoRA adapter {voice!r} written to {out_dir} in {metrics['build_seconds']:.0f} s"
    )
    return {**metrics, "skipped": False}


def _lora_model(base: Path, rank: int) -> tuple[Any, Any]:
    """The base checkpoint wrapped in fresh LoRA weights on its attention and MLP projections."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(base)
    model = AutoModelForCausalLM.from_pretrained(base)
    # every attention and MLP projection of the Llama blocks (vLLM packs q/k/v and gate/up itself)
    config = LoraConfig(
        r=rank,
        lora_alpha=2 * rank,
        lora_dropout=0.0,
        task_type="CAUSAL_LM",
        target_modules=[
            "q_proj",
            "k_proj",
            "v_proj",
            "o_proj",
            "gate_proj",
            "up_proj",
            "down_proj",
        ],
    )
    return get_peft_model(model, config), tokenizer


def _fingerprint(base: Path, params: dict[str, Any]) -> str:
    h = hashlib.sha256(json.dumps(params, sort_keys=True).encode())
    h.update(inspect.getsource(corpus).encode())
    h.update(Path(__file__).read_bytes())
    for name in ("config.json", "model.safetensors"):
        path = base / name
        if path.is_file():
            h.update(hashlib.sha256(path.read_bytes()).digest())
    return h.hexdigest()[:16]


def _stored(out_dir: Path, fingerprint: str) -> dict[str, Any] | None:
    try:
        stored = json.loads((out_dir / FINGERPRINT_FILE).read_text())
    except (OSError, ValueError):
        return None
    complete = (out_dir / ADAPTER_CONFIG).is_file() and (
        out_dir / "adapter_model.safetensors"
    ).is_file()
    return stored if complete and stored.get("fingerprint") == fingerprint else None


def find_adapters(adapters_dir: Path) -> dict[str, Path]:
    """Adapters on disk under ``adapters_dir`` (one folder each), by folder name."""
    if not adapters_dir.is_dir():
        return {}
    return {p.name: p for p in sorted(adapters_dir.iterdir()) if (p / ADAPTER_CONFIG).is_file()}


def _say(console: Any, message: str) -> None:
    if console is not None:
        console.print(message)
