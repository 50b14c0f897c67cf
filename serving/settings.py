"""The one settings object.

Precedence, highest first: explicit arguments (typer options, the ``args`` block of
``deploy/serve.yaml``), ``REENGAGE_*`` environment variables (nested with ``__``, e.g.
``REENGAGE_FEATURES__BACKEND=redis``), then the defaults below. Paths are resolved to
absolute ones in the driver, so Ray replicas (other processes, other working
directories) read the same files.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def project_root() -> Path:
    """The checkout this package runs from (editable install), else the working dir."""
    here = Path(__file__).resolve().parents[1]
    return here if (here / "feature_store").is_dir() and (here / "model_repo").is_dir() else Path.cwd()


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())


class DataSettings(_Section):
    customers: int = Field(100_000, ge=100, description="synthetic customers to generate")
    seed: int = 7
    snapshots: int = Field(2, ge=2, description="feature snapshots per customer (point-in-time joins)")


class FeatureSettings(_Section):
    repo_path: Path = Field(default_factory=lambda: project_root() / "feature_store")
    # "embedded" (no server, default) or "redis": selects feature_store.yaml / feature_store.redis.yaml
    backend: Literal["embedded", "redis"] = "embedded"
    redis_url: str = "redis://127.0.0.1:6379/0"
    # "packed": our vectorized batch reader; "feast": Feast's own get_online_features
    reader: Literal["packed", "feast"] = "packed"
    # what a stale or missing feature view means: score with the view's defaults and say
    # so, or answer found: false
    on_missing_view: Literal["defaults", "not_found"] = "not_found"
    timeout_s: float = Field(0.25, gt=0, description="fail fast when the online store is slow")
    # embedded (LMDB) reads of fewer rows run inline on the event loop (serving/components/offload.py);
    # Redis reads always run in a thread
    offload_rows: int = Field(16_384, ge=0)

    @property
    def yaml_file(self) -> Path:
        name = "feature_store.yaml" if self.backend == "embedded" else "feature_store.redis.yaml"
        return self.repo_path / name


class ModelSettings(_Section):
    repo_path: Path = Field(default_factory=lambda: project_root() / "model_repo")
    churn: str = "churn"
    engagement: str = "engagement"
    # None: config.pbtxt's dynamic_batching.max_queue_delay_microseconds (0 as exported)
    batch_wait_timeout_s: float | None = Field(None, ge=0)
    intra_op_threads: int = Field(1, ge=0, description="ONNX Runtime threads per replica (0: ORT default)")
    # Every replica re-reads the repository this often: new versions go live everywhere
    # (loaded before old ones are dropped), and repository load/unload calls made on one
    # replica reach the others. 0 turns it off.
    poll_interval_s: float = Field(5.0, ge=0)
    # runtime calls of fewer rows run inline on the event loop, larger ones in a thread
    # (measured: serving/components/offload.py); lower it where a replica has spare cores
    offload_rows: int = Field(16_384, ge=0)
    # Dynamic batching inside a Serve replica: "asyncio" (the in-process batcher: an idle
    # model runs a call at once, calls arriving meanwhile form the next batch) or "serve"
    # (Ray Serve's serve.batch). asyncio measured cheaper per request (docs/benchmarks.md):
    # serve.batch records its own metrics per batch and hands each batch to a task.
    batcher: Literal["asyncio", "serve"] = "asyncio"


class BanditSettings(_Section):
    enabled: bool = True
    # several routers (actions, model rollout) keep separate state and logs under their name
    name: str = Field("actions", pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    policy: Literal["thompson", "linucb", "lin_ts", "uniform"] = "thompson"
    arms: list[str] = ["discount_offer", "free_shipping", "content_digest", "winback_email", "no_contact"]
    # columns of the context vector: feature names, or the scores "churn_probability" /
    # "engagement_probability"; the policies add an intercept themselves
    context_features: list[str] = ["churn_probability", "engagement_probability"]
    control_arm: str = "no_contact"  # what holdout and capped customers get
    epsilon: float = Field(0.05, ge=0, le=1, description="floor: every arm keeps at least epsilon/K propensity")
    backend: Literal["embedded", "redis"] = "embedded"
    redis_url: str = "redis://127.0.0.1:6379/0"
    state_path: Path | None = None  # embedded backend; default: <data_dir>/bandit
    reward_window_s: float = Field(7 * 24 * 3600, gt=0)
    holdout_share: float = Field(0.05, ge=0, lt=1)
    holdout_salt: str = "reengage-holdout"  # changing it reshuffles who is held out
    contact_cap: int = Field(3, ge=0, description="contacts per customer per cap window (0: no cap)")
    contact_window_s: float = Field(7 * 24 * 3600, gt=0)
    discount: float = Field(1.0, gt=0, le=1, description="<1 forgets old rewards (non-stationarity)")
    alpha: float = Field(1.0, gt=0, description="LinUCB exploration / LinTS scale")
    ridge: float = Field(1.0, gt=0, description="prior precision of the linear policies")
    # Monte Carlo draws per row that estimate LinTS propensities (context-free Thompson
    # sampling uses 16x as many, once per batch); the action is sampled from that estimate,
    # so the logged propensity is exact whatever the count
    ts_samples: int = Field(64, ge=8, le=10_000)
    sync_interval_s: float = Field(1.0, ge=0, description="how often a replica checks for state learned elsewhere")
    seed: int | None = None
    # Redis socket and connect timeout: a hung Redis is a 503 after this, not a stuck replica
    timeout_s: float = Field(0.25, gt=0, description="fail fast when the bandit state (Redis) is slow")
    # the decision log is written by a background thread, in groups: at the latest this long
    # after a decision (a crash loses at most this much), or once flush_rows rows wait
    flush_interval_s: float = Field(0.05, gt=0, le=10)
    flush_rows: int = Field(10_000, ge=1)
    # decision rows waiting for the state store, at most; beyond it a decision is refused
    # (503 overloaded, Retry-After) rather than queued without bound or dropped
    log_queue_rows: int = Field(100_000, ge=1)
    # retention of the decision log and rewards: by time (never under the reward window),
    # then by size; a decision whose reward window is open is never trimmed
    log_retention_s: float = Field(30 * 24 * 3600, gt=0)
    log_max_mb: float | None = Field(1024.0, gt=0, description="decision log and rewards, at most (None: no cap)")
    trim_interval_s: float = Field(60.0, gt=0)

    @model_validator(mode="after")
    def _arms_consistent(self) -> "BanditSettings":
        if len(self.arms) < 2 or len(set(self.arms)) != len(self.arms):
            raise ValueError("bandit.arms needs at least two distinct arms")
        if self.log_retention_s < self.reward_window_s:
            raise ValueError("bandit.log_retention_s must be at least bandit.reward_window_s: "
                             "a decision is kept while its reward can still arrive")
        if (self.holdout_share > 0 or self.contact_cap > 0) and self.control_arm not in self.arms:
            raise ValueError(f"bandit.control_arm {self.control_arm!r} must be one of the arms "
                             "when holdout_share or contact_cap is set")
        return self


class LLMSettings(_Section):
    enabled: bool = True
    backend: Literal["auto", "vllm", "transformers", "remote"] = "auto"
    model_path: Path = Field(default_factory=lambda: project_root() / "model_repo" / "email_writer")
    remote_url: str = "http://127.0.0.1:8001/v1"
    remote_model: str = "email_writer"
    base_model: Path | None = None  # a real HF base model on disk to fine-tune instead
    max_tokens: int = Field(160, ge=1, le=2048)
    temperature: float = Field(0.7, ge=0, le=2)
    timeout_s: float = Field(20.0, gt=0)
    unsubscribe_footer: str = "You received this email because you are a customer. Unsubscribe: {unsubscribe_url}"
    unsubscribe_url: str = "https://example.com/unsubscribe?customer={customer_id}"
    served_model_name: str = "email_writer"  # the `model` name /v1/completions and /v1/models answer to
    remote_api_key: str = "EMPTY"
    top_p: float = Field(1.0, gt=0, le=1)
    # micro-batching inside the transformers engine (vLLM batches continuously itself)
    max_batch_size: int = Field(8, ge=1)
    batch_wait_s: float = Field(0.01, ge=0)
    # torch CPU threads for the transformers engine (0: torch's default). 1 measured 4x faster
    # than 2 on a 2-core machine shared with other processes (`reengage bench`)
    num_threads: int = Field(1, ge=0)
    # guardrail bounds on the generated email
    subject_max_chars: int = Field(120, ge=10)
    body_min_chars: int = Field(40, ge=1)
    body_max_chars: int = Field(2000, ge=10)
    # fine-tuning (`reengage build`): steps None = the trainer's default for the mode
    lora: bool = False
    train_steps: int | None = Field(None, ge=1)
    train_seed: int = 0
    # vLLM engine: LoRA adapters selectable per request by name (SamplingParams.lora)
    lora_adapters: dict[str, Path] = {}
    max_lora_rank: int = Field(16, ge=1)
    gpu_memory_utilization: float = Field(0.5, gt=0, le=1)
    max_model_len: int | None = Field(None, ge=16)
    dtype: str = "auto"
    vllm_engine_kwargs: dict[str, Any] = {}  # passed through to vllm's AsyncEngineArgs
    # the writer deployment's resources and scale (apart from the scoring graph); CPU is
    # a scheduling reservation: 2 ingress x 0.5 + writer 0.25 (+ split parts) fit 2 CPUs
    num_cpus: float = Field(0.25, ge=0)
    num_gpus: float | None = Field(None, ge=0, description="None: 1 when the vLLM backend is chosen, else 0")
    max_replicas: int = Field(1, ge=1)


class ServerSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    grpc_port: int = Field(9000, ge=0, le=65535)
    metrics_port: int = Field(8080, ge=0, le=65535, description="Prometheus export of Ray's metrics agent")
    # "fused": features, models and bandit run inside each ingress replica (no handle
    # hops); "split": each is its own deployment behind DeploymentHandles.
    topology: Literal["fused", "split"] = "fused"
    haproxy: bool = True
    # fused: each ingress replica is a full scoring pipeline; one per core (2 here)
    ingress_replicas: int | Literal["auto"] = 2
    max_replicas: int = Field(2, ge=1)
    num_cpus: float = Field(0.5, ge=0)
    max_ongoing_requests: int = Field(64, ge=1)
    # Ray's own per-request costs, each set by measurement (docs/benchmarks.md, "Ray's overheads"):
    # replica log level and Serve's access log line per request
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "WARNING"
    access_log: bool = False
    # how often Serve exports the metrics it caches per replica and handle (Serve's default: 100 ms)
    serve_metrics_export_interval_ms: int = Field(1000, ge=0)
    # Ray's dashboard (the `serve` CLI's REST API needs it; costs CPU under load)
    dashboard: bool = False


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="REENGAGE_", env_nested_delimiter="__", extra="forbid", protected_namespaces=()
    )

    data_dir: Path = Field(default_factory=lambda: project_root() / "data")
    data: DataSettings = DataSettings()
    features: FeatureSettings = FeatureSettings()
    models: ModelSettings = ModelSettings()
    bandit: BanditSettings = BanditSettings()
    llm: LLMSettings = LLMSettings()
    server: ServerSettings = ServerSettings()

    @model_validator(mode="after")
    def _absolute_paths(self) -> "Settings":
        self.data_dir = self.data_dir.resolve()
        self.features.repo_path = self.features.repo_path.resolve()
        self.models.repo_path = self.models.repo_path.resolve()
        self.llm.model_path = self.llm.model_path.resolve()
        self.llm.lora_adapters = {k: Path(v).resolve() for k, v in self.llm.lora_adapters.items()}
        if self.bandit.state_path is None:
            self.bandit.state_path = self.data_dir / "bandit"
        return self


def load_settings(overrides: dict[str, Any] | None = None) -> Settings:
    """Settings from the environment with ``overrides`` (nested dicts) on top.

    pydantic-settings deep-merges init arguments over env sources, so an override of
    ``server.port`` keeps an env-given ``server.host``.
    """
    return Settings(**(overrides or {}))
