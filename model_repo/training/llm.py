"""Build the email writer checkpoint: a small Llama from scratch, or a fine-tuned base.

Without a base model (the default, and all a CI machine can do) a byte-level BPE
tokenizer and a 4-layer Llama are trained on the generated corpus in a few minutes of
CPU. With ``base_model`` (a Hugging Face causal LM on disk) the same loop fine-tunes it
in full or through LoRA adapters (peft); LoRA runs save the adapter under ``lora/`` for
vLLM's per-request adapters and the merged weights at the top for plain loading. Either
way the output is a Hugging Face directory that transformers and vLLM both load.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import math
import os
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from model_repo.training import corpus as corpus_mod
from serving.llm import prompts as prompts_mod
from serving.llm.engine import SamplingParams
from serving.llm.guardrails import GuardrailConfig, check_email
from serving.llm.prompts import ACTIONS, STOP, fill_slots, parse_completion

FINGERPRINT_FILE = "reengage_fingerprint.json"
METRICS_FILE = "metrics.json"
EOS = "<|endoftext|>"
TRAIN_EXAMPLES = 6000
HELDOUT_EXAMPLES = 128
SCRATCH = {"vocab_size": 1024, "n_positions": 384, "n_embd": 128, "n_layer": 4, "n_head": 4}


def build_checkpoint(
    out_dir: Path,
    *,
    base_model: Path | None = None,
    lora: bool = False,
    steps: int | None = None,
    seed: int = 0,
    console: Any = None,
    size: dict[str, int] | None = None,
    heldout: int = HELDOUT_EXAMPLES,
    threads: int | None = None,
) -> dict[str, Any]:
    """Train (or reuse) the checkpoint in ``out_dir``; returns its metrics.

    Deterministic by ``seed``. Skipped when ``out_dir`` holds a checkpoint built from the
    same corpus, code and parameters (fingerprint file); the stored metrics come back
    with ``"skipped": True``. ``size`` overrides the scratch model's dimensions (GPT-2 names) and
    ``heldout`` the number of held-out prompts evaluated (tests use tiny values).
    ``threads``: torch CPU threads (default: 1 on machines of 2 cores or fewer, where a
    second intra-op thread competes with other processes and slows every step).
    """
    out_dir = Path(out_dir)
    steps = steps or (600 if base_model is None else 200)
    size = {**SCRATCH, **(size or {})}
    params = {
        "base_model": str(base_model) if base_model else None,
        "lora": lora,
        "steps": steps,
        "seed": seed,
        "size": size,
        "heldout": heldout,
    }
    fingerprint = _fingerprint(params, base_model)
    stored = _stored_metrics(out_dir, fingerprint)
    if stored is not None:
        _say(console, f"LLM checkpoint up to date in {out_dir}")
        return {**stored, "skipped": True}

    import torch

    previous_threads = torch.get_num_threads()
    torch.set_num_threads(
        threads or (1 if (os.cpu_count() or 1) <= 2 else min(8, os.cpu_count() or 1))
    )
    try:
        return _build(
            out_dir, base_model, lora, steps, seed, size, heldout, params, fingerprint, console
        )
    finally:
        torch.set_num_threads(previous_threads)


def _build(
    out_dir: Path,
    base_model: Path | None,
    lora: bool,
    steps: int,
    seed: int,
    size: dict[str, int],
    heldout: int,
    params: dict[str, Any],
    fingerprint: str,
    console: Any,
) -> dict[str, Any]:
    import torch

    torch.manual_seed(seed)
    t0 = time.perf_counter()
    train = corpus_mod.generate(TRAIN_EXAMPLES, seed)
    held = corpus_mod.generate(heldout, seed + 10_000, heldout=True)
    if base_model is None:
        tokenizer = _train_tokenizer([e.prompt + e.completion for e in train], size)
        model = _scratch_model(tokenizer, size)
        lr = 3e-3
    else:
        model, tokenizer = _load_base(Path(base_model), lora)
        lr = 2e-4 if lora else 5e-5
    loss = _train_loop(model, tokenizer, train, steps=steps, lr=lr, seed=seed, console=console)
    train_s = time.perf_counter() - t0

    tmp = out_dir.with_name(out_dir.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model = _save(model, tokenizer, tmp, lora)
    model.eval()
    metrics = {
        "fingerprint": fingerprint,
        **params,
        "train_examples": len(train),
        "final_loss": round(loss, 4),
        "train_seconds": round(train_s, 1),
        "parameters": int(sum(p.numel() for p in model.parameters())),
        **evaluate(model, tokenizer, held),
    }
    metrics["build_seconds"] = round(time.perf_counter() - t0, 1)
    (tmp / METRICS_FILE).write_text(json.dumps(metrics, indent=2))
    (tmp / FINGERPRINT_FILE).write_text(
        json.dumps({"fingerprint": fingerprint, **params}, indent=2)
    )
    shutil.rmtree(out_dir, ignore_errors=True)
    tmp.rename(out_dir)
    _say(
        console,
        f"LLM checkpoint written to {out_dir}: held-out action mention "
        f"{metrics['heldout_action_mention_rate']:.0%}, built in {metrics['build_seconds']:.0f} s",
    )
    return {**metrics, "skipped": False}


def evaluate(
    model: Any, tokenizer: Any, heldout: list[corpus_mod.Example], batch: int = 16
) -> dict[str, Any]:
    """Greedy generations for held-out prompts: how often the subject names the action's offer."""
    from serving.llm.transformers_engine import generate_batch

    tokenizer.padding_side = "left"
    params = SamplingParams(max_tokens=96, temperature=0.0, stop=STOP)
    cfg = GuardrailConfig()
    mention = passed = 0
    for i in range(0, len(heldout), batch):
        chunk = heldout[i : i + batch]
        for ex, gen in zip(
            chunk, generate_batch(model, tokenizer, [e.prompt for e in chunk], params)
        ):
            subject, body = parse_completion(fill_slots(gen.text, ex.facts))
            mention += ACTIONS[ex.action].keyword.lower() in subject.lower()
            passed += check_email(subject, body, ex.facts, ex.action, cfg) is None
    n = max(len(heldout), 1)
    return {
        "heldout_prompts": len(heldout),
        "heldout_action_mention_rate": round(mention / n, 4),
        "heldout_guardrail_pass_rate": round(passed / n, 4),
    }


def _fingerprint(params: dict[str, Any], base_model: Path | None) -> str:
    h = hashlib.sha256()
    h.update(
        json.dumps(
            {**params, "corpus": corpus_mod.CORPUS_VERSION, "n": TRAIN_EXAMPLES}, sort_keys=True
        ).encode()
    )
    for module in (corpus_mod, prompts_mod):
        h.update(inspect.getsource(module).encode())
    h.update(Path(__file__).read_bytes())
    if base_model is not None and (Path(base_model) / "config.json").is_file():
        h.update((Path(base_model) / "config.json").read_bytes())
    return h.hexdigest()[:16]


def _stored_metrics(out_dir: Path, fingerprint: str) -> dict[str, Any] | None:
    try:
        stored = json.loads((out_dir / FINGERPRINT_FILE).read_text())
        metrics = json.loads((out_dir / METRICS_FILE).read_text())
    except (OSError, ValueError):
        return None
    complete = all(
        (out_dir / f).is_file() for f in ("config.json", "model.safetensors", "tokenizer.json")
    )
    return metrics if complete and stored.get("fingerprint") == fingerprint else None


def _train_tokenizer(texts: list[str], size: dict[str, int]) -> Any:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=size["vocab_size"],
        special_tokens=[EOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=EOS,
        eos_token=EOS,
        pad_token=EOS,
        unk_token=EOS,
        padding_side="left",
        model_max_length=size["n_positions"],
    )


def _scratch_model(tokenizer: Any, size: dict[str, int]) -> Any:
    """A small Llama: vLLM serves LoRA adapters on Llama (its GPT-2 has no LoRA support)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    eos = tokenizer.convert_tokens_to_ids(EOS)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=size["n_embd"],
        intermediate_size=(8 * size["n_embd"] // 3 + 31) // 32 * 32,
        num_hidden_layers=size["n_layer"],
        num_attention_heads=size["n_head"],
        num_key_value_heads=size["n_head"],
        max_position_embeddings=size["n_positions"],
        tie_word_embeddings=True,
        bos_token_id=eos,
        eos_token_id=eos,
        pad_token_id=eos,
    )
    return LlamaForCausalLM(config)


def _load_base(path: Path, lora: bool) -> tuple[Any, Any]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model: Any = AutoModelForCausalLM.from_pretrained(path)
    if lora:
        from peft import LoraConfig, get_peft_model

        try:
            model = get_peft_model(
                model, LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, task_type="CAUSAL_LM")
            )
        except ValueError:  # an architecture peft has no default target modules for
            model = get_peft_model(
                model,
                LoraConfig(
                    r=8,
                    lora_alpha=16,
                    lora_dropout=0.0,
                    task_type="CAUSAL_LM",
                    target_modules="all-linear",
                ),
            )
    return model, tokenizer


def _encode(tokenizer: Any, examples: list[corpus_mod.Example]) -> list[tuple[list[int], int]]:
    """(token ids ending in EOS, prompt length) per example; the loss skips the prompt."""
    prompts = tokenizer([e.prompt for e in examples], add_special_tokens=False)["input_ids"]
    full = tokenizer([e.prompt + e.completion for e in examples], add_special_tokens=False)[
        "input_ids"
    ]
    eos = tokenizer.eos_token_id
    return [(ids + [eos], len(p)) for ids, p in zip(full, prompts)]


def _train_loop(
    model: Any,
    tokenizer: Any,
    examples: list[corpus_mod.Example],
    *,
    steps: int,
    lr: float,
    seed: int,
    console: Any,
    batch_size: int = 16,
) -> float:
    import torch

    data = _encode(tokenizer, examples)
    rng = np.random.default_rng(seed)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.01)
    warmup = max(1, steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt,
        lambda s: (
            min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps))
        ),
    )
    pad = tokenizer.pad_token_id
    device = "cuda" if torch.cuda.is_available() else "cpu"  # a real base model on a GPU machine
    model.to(device)
    model.train()
    loss_ema = float("nan")
    progress, task = _progress(console, steps)
    try:
        for step in range(steps):
            ids, labels, mask = (
                t.to(device) for t in _batch(data, rng.integers(0, len(data), batch_size), pad)
            )
            loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
            loss_ema = loss.item() if step == 0 else 0.95 * loss_ema + 0.05 * loss.item()
            if progress is not None:
                progress.update(
                    task, advance=1, description=f"training email writer (loss {loss_ema:.3f})"
                )
    finally:
        if progress is not None:
            progress.stop()
    return loss_ema


def _batch(data: list[tuple[list[int], int]], rows: np.ndarray, pad: int) -> tuple[Any, Any, Any]:
    """Right-padded (ids, labels, mask) tensors; labels are -100 on prompt and padding."""
    import torch

    picked = [data[int(i)] for i in rows]
    width = max(len(ids) for ids, _ in picked)
    ids = np.full((len(picked), width), pad, dtype=np.int64)
    lengths = np.array([len(x) for x, _ in picked])
    prompt_len = np.array([p for _, p in picked])
    for r, (x, _) in enumerate(picked):
        ids[r, : len(x)] = x
    cols = np.arange(width)[None, :]
    mask = cols < lengths[:, None]
    labels = np.where(mask & (cols >= prompt_len[:, None]), ids, -100)
    return torch.from_numpy(ids), torch.from_numpy(labels), torch.from_numpy(mask.astype(np.int64))


def _save(model: Any, tokenizer: Any, out: Path, lora: bool) -> Any:
    """Write HF files; LoRA: adapter under ``lora/`` and merged weights at the top."""
    from transformers import GenerationConfig

    out.mkdir(parents=True, exist_ok=True)
    if lora:
        model.save_pretrained(out / "lora")
        model = model.merge_and_unload()
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    GenerationConfig(
        max_new_tokens=160,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
    ).save_pretrained(out)
    _portable_tokenizer_config(out)
    return model


def _portable_tokenizer_config(out: Path) -> None:
    """Name a tokenizer class that transformers 4.x (vLLM's pin) also knows."""
    path = out / "tokenizer_config.json"
    if not path.is_file():
        return
    cfg = json.loads(path.read_text())
    if cfg.get("tokenizer_class") in {"TokenizersBackend", None}:
        cfg["tokenizer_class"] = "PreTrainedTokenizerFast"
        path.write_text(json.dumps(cfg, indent=2))


def _progress(console: Any, steps: int) -> tuple[Any, Any]:
    if console is None:
        return None, None
    from rich.progress import BarColumn, Progress, TimeElapsedColumn

    progress = Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )
    progress.start()
    return progress, progress.add_task("training email writer", total=steps)


def _say(console: Any, message: str) -> None:
    if console is not None:
        console.print(message)
