"""The email writer: its engine and checkpoint, generation, guardrails, fine-tuning, LoRA
adapters and the writer deployment's resources."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from serving.settings.base import Section, project_root


class LLMSettings(Section):
    enabled: bool = True
    backend: Literal["auto", "vllm", "transformers", "remote"] = "auto"
    model_path: Path = Field(default_factory=lambda: project_root() / "model_repo" / "email_writer")
    remote_url: str = "http://127.0.0.1:8001/v1"
    remote_model: str = "email_writer"
    base_model: Path | None = None  # a real HF base model on disk to fine-tune instead
    max_tokens: int = Field(160, ge=1, le=2048)
    temperature: float = Field(0.7, ge=0, le=2)
    timeout_s: float = Field(20.0, gt=0)
    unsubscribe_footer: str = (
        "You received this email because you are a customer. Unsubscribe: {unsubscribe_url}"
    )
    # your CRM's unsubscribe page, which records the opt-out with POST /v1/consent (docs/api.md)
    unsubscribe_url: str = "https://example.com/unsubscribe?customer={customer_id}"
    served_model_name: str = (
        "email_writer"  # the `model` name /v1/completions and /v1/models answer to
    )
    remote_api_key: str = "EMPTY"
    top_p: float = Field(1.0, gt=0, le=1)
    # micro-batching inside the transformers engine (vLLM batches continuously itself)
    max_batch_size: int = Field(8, ge=1)
    batch_wait_s: float = Field(0.01, ge=0)
    # torch CPU threads for the transformers engine (0: torch's default). One, so that the
    # engine does not contend for cores with the other processes of the machine (`reengage
    # bench llm` compares settings)
    num_threads: int = Field(1, ge=0)
    # guardrail bounds on the generated email
    subject_max_chars: int = Field(120, ge=10)
    body_min_chars: int = Field(40, ge=1)
    body_max_chars: int = Field(2000, ge=10)
    # fine-tuning (`reengage build`): steps None = the trainer's default for the mode
    lora: bool = False
    train_steps: int | None = Field(None, ge=1)
    train_seed: int = 0
    # LoRA adapters (brand voices) selectable per request by name: `reengage build` trains one
    # per voice into <model_path>/adapters/<voice>; lora_adapters adds others by name -> path
    voices: list[Literal["classic", "playful"]] = ["classic", "playful"]
    adapter_steps: int = Field(100, ge=1)
    lora_adapters: dict[str, Path] = {}
    max_lora_rank: int = Field(16, ge=1)
    max_loras: int | None = Field(
        None, ge=1, description="adapters in one batch; None: all of them"
    )
    # vLLM engine. On a GPU gpu_memory_utilization sizes the KV cache; on the CPU build
    # kv_cache_memory_bytes does (None there: vLLM takes gpu_memory_utilization of the RAM)
    gpu_memory_utilization: float = Field(0.5, gt=0, le=1)
    kv_cache_memory_bytes: int | None = Field(None, ge=1 << 20)
    max_model_len: int | None = Field(None, ge=16)
    # "auto": float32 on the CPU, bfloat16 (or float16) on a GPU, for both backends
    dtype: Literal["auto", "float32", "float16", "bfloat16"] = "auto"
    vllm_engine_kwargs: dict[str, Any] = {}  # passed through to vllm's AsyncEngineArgs
    # the writer deployment's resources and scale (apart from the scoring graph); CPU is
    # a scheduling reservation: 2 ingress x 0.5 + writer 0.25 (+ split parts) fit 2 CPUs
    num_cpus: float = Field(0.25, ge=0)
    num_gpus: float | None = Field(
        None,
        ge=0,
        description=(
            "GPUs per writer replica. None: decided where build_app runs "
            "(1 when vLLM and a GPU are there): right for one machine only; "
            "a cluster sets it (deploy/k8s)"
        ),
    )
    max_replicas: int = Field(1, ge=1)

    @property
    def adapters_dir(self) -> Path:
        return self.model_path / "adapters"

    def adapters(self) -> dict[str, Path]:
        """The LoRA adapters to serve: built voices found on disk, then ``lora_adapters``."""
        built: dict[str, Path] = {
            v: self.adapters_dir / v
            for v in self.voices
            if (self.adapters_dir / v / "adapter_config.json").is_file()
        }
        return {**built, **self.lora_adapters}
