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

from pydantic import (
    IPvAnyNetwork,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict


def project_root() -> Path:
    """The checkout this package runs from (editable install), else the working dir."""
    here = Path(__file__).resolve().parents[1]
    return (
        here if (here / "feature_store").is_dir() and (here / "model_repo").is_dir() else Path.cwd()
    )


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())


class RotationSettings(_Section):
    """When an append-only log file (audit, request log, dead letters) rotates: like
    ``logging.handlers.RotatingFileHandler`` (``f`` -> ``f.1`` ... ``f.<backups>``, the
    oldest dropped), by size or by age, whichever comes first."""

    max_mb: float = Field(
        100.0, ge=0, description="rotate once the file holds this many MB (0: never by size)"
    )
    max_age_h: float = Field(
        24.0 * 7, ge=0, description="rotate once the file is this many hours old (0: never by age)"
    )
    backups: int = Field(5, ge=1, le=1000, description="rotated files kept beside the current one")

    @property
    def max_bytes(self) -> int:
        return int(self.max_mb * 2**20)

    @property
    def max_age_s(self) -> float:
        return self.max_age_h * 3600.0


class DataSettings(_Section):
    customers: int = Field(100_000, ge=100, description="synthetic customers to generate")
    seed: int = 7
    snapshots: int = Field(
        2, ge=2, description="feature snapshots per customer (point-in-time joins)"
    )


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


class TrafficCandidate(_Section):
    version: str = Field(pattern=r"^[0-9]+$")
    weight: float = Field(ge=0, le=100, description="percent of customers it scores")


class TrafficShadow(_Section):
    version: str = Field(pattern=r"^[0-9]+$")
    percent: float = Field(
        100.0, gt=0, le=100, description="percent of scored rows it also scores, off the answer"
    )


class TrafficPolicyConfig(_Section):
    """One model's traffic (Seldon Core 2's experiment shape): the default version takes
    whatever the candidates do not; assignment is sticky by a salted hash of the customer id."""

    default: str | None = Field(
        None, pattern=r"^[0-9]+$", description="None: the newest loaded version"
    )
    candidates: list[TrafficCandidate] = []
    shadow: TrafficShadow | None = None
    salt: str | None = Field(
        None,
        min_length=1,
        max_length=200,
        description="fixed when a rollout starts (any string); None: the running "
        "rollout's salt, or a new random one",
    )
    buckets: dict[str, list[tuple[int, int]]] | None = Field(
        None, description="set by the server: the [start, end) bucket ranges each candidate owns"
    )

    @field_validator("candidates")
    @classmethod
    def _consistent(
        cls, candidates: list[TrafficCandidate], info: ValidationInfo
    ) -> list[TrafficCandidate]:
        """On the field, so the error names ``candidates``."""
        versions = [c.version for c in candidates]
        default = info.data.get("default")
        if len(set(versions)) != len(versions) or (default is not None and default in versions):
            raise ValueError("candidate versions must be distinct and differ from the default")
        if sum(c.weight for c in candidates) > 100:
            raise ValueError("candidate weights add up to more than 100 percent")
        return candidates


class ModelSettings(_Section):
    repo_path: Path = Field(default_factory=lambda: project_root() / "model_repo")
    churn: str = "churn"
    engagement: str = "engagement"
    # None: config.pbtxt's dynamic_batching.max_queue_delay_microseconds (0 as exported)
    batch_wait_timeout_s: float | None = Field(None, ge=0)
    intra_op_threads: int = Field(
        1, ge=0, description="ONNX Runtime threads per replica (0: ORT default)"
    )
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
    # Triton's model control modes: "poll" (new versions on disk go live, load/unload calls
    # work), "explicit" (only load/unload calls and rollouts change what is loaded), "none"
    # (what is on disk at start stays; load/unload calls are refused)
    control_mode: Literal["none", "poll", "explicit"] = "poll"
    # traffic policy per model (so `serve deploy` carries it); `reengage rollout` and the
    # /v1/admin/rollout calls change it live. A changed policy here wins over live changes.
    rollout: dict[str, TrafficPolicyConfig] = {}
    # a policy change takes effect on every replica at one moment, this long after it is
    # made (None: poll_interval_s + 0.5 s: every replica has polled and warmed its versions)
    rollout_activation_s: float | None = Field(None, ge=0)
    # the promotion gate: a candidate is promoted when the lower bound of (candidate -
    # default) mean reward, an always-valid confidence sequence, is above -margin (reward
    # units: 0.01 is one point of conversion rate); fewer resolved decisions than
    # rollout_min_decisions on either arm is "insufficient"
    rollout_margin: float = Field(0.01, gt=0)
    rollout_min_decisions: int = Field(200, ge=2)
    # shadow calls in flight per model and replica; beyond it a batch's shadow is skipped
    # and counted (reengage_shadow_skipped_rows_total): a slow shadow never piles up tasks
    shadow_max_tasks: int = Field(64, ge=0)


class BanditSettings(_Section):
    enabled: bool = True
    # several routers (actions, model rollout) keep separate state and logs under their name
    name: str = Field("actions", pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    policy: Literal["thompson", "linucb", "lin_ts", "uniform"] = "thompson"
    arms: list[str] = [
        "discount_offer",
        "free_shipping",
        "content_digest",
        "winback_email",
        "no_contact",
    ]
    # columns of the context vector: feature names, or the scores "churn_probability" /
    # "engagement_probability"; the policies add an intercept themselves
    context_features: list[str] = ["churn_probability", "engagement_probability"]
    control_arm: str = "no_contact"  # what holdout and capped customers get
    epsilon: float = Field(
        0.05, ge=0, le=1, description="floor: every arm keeps at least epsilon/K propensity"
    )
    backend: Literal["embedded", "redis"] = "embedded"
    redis_url: str = "redis://127.0.0.1:6379/0"
    state_path: Path | None = None  # embedded backend; default: <data_dir>/bandit
    reward_window_s: float = Field(7 * 24 * 3600, gt=0)
    holdout_share: float = Field(0.05, ge=0, lt=1)
    holdout_salt: str = "reengage-holdout"  # changing it reshuffles who is held out
    contact_cap: int = Field(
        3, ge=0, description="contacts per customer per cap window (0: no cap)"
    )
    contact_window_s: float = Field(7 * 24 * 3600, gt=0)
    discount: float = Field(
        1.0, gt=0, le=1, description="<1 forgets old rewards (non-stationarity)"
    )
    alpha: float = Field(1.0, gt=0, description="LinUCB exploration / LinTS scale")
    ridge: float = Field(1.0, gt=0, description="prior precision of the linear policies")
    # Monte Carlo draws per row that estimate LinTS propensities (context-free Thompson
    # sampling uses 16x as many, once per batch); the action is sampled from that estimate,
    # so the logged propensity is exact whatever the count
    ts_samples: int = Field(64, ge=8, le=10_000)
    sync_interval_s: float = Field(
        1.0, ge=0, description="how often a replica checks for state learned elsewhere"
    )
    seed: int | None = None
    # Redis socket and connect timeout: a hung Redis is a 503 after this, not a stuck replica
    timeout_s: float = Field(
        0.25, gt=0, description="fail fast when the bandit state (Redis) is slow"
    )
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
    log_max_mb: float | None = Field(
        1024.0, gt=0, description="decision log and rewards, at most (None: no cap)"
    )
    trim_interval_s: float = Field(60.0, gt=0)
    # a log-only record the store refuses for a reason other than being unavailable (a
    # poison record) is tried alone this many times, then written to the dead-letter file
    # and counted (reengage_bandit_dead_letters_total), so the queue moves on
    dead_letter_tries: int = Field(
        5, ge=1, le=1000, description="tries of a failing record before its dead letter"
    )
    dead_letter_file: Path | None = Field(
        None, description="JSON lines of dead records; default <state_path>/dead_letters.jsonl"
    )
    dead_letter_rotation: RotationSettings = RotationSettings()

    @model_validator(mode="after")
    def _arms_consistent(self) -> "BanditSettings":
        if len(self.arms) < 2 or len(set(self.arms)) != len(self.arms):
            raise ValueError("bandit.arms needs at least two distinct arms")
        if self.log_retention_s < self.reward_window_s:
            raise ValueError(
                "bandit.log_retention_s must be at least bandit.reward_window_s: "
                "a decision is kept while its reward can still arrive"
            )
        if (self.holdout_share > 0 or self.contact_cap > 0) and self.control_arm not in self.arms:
            raise ValueError(
                f"bandit.control_arm {self.control_arm!r} must be one of the arms "
                "when holdout_share or contact_cap is set"
            )
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
            "GPUs per writer replica. None: decided where build_app runs (1 when vLLM and a GPU are "
            "there): right for one machine only; a cluster sets it (deploy/k8s)"
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


class MonitorSettings(_Section):
    """Drift, actions and segment contact rates in production (``/v1/monitor``, docs/operations.md)."""

    enabled: bool = True
    # each replica writes its per-second counts to the shared state this often
    flush_interval_s: float = Field(1.0, gt=0, le=60)
    retention_s: int = Field(3600, ge=60, description="seconds of per-second counts kept")
    window_s: int = Field(
        300, ge=1, description="the window /v1/monitor and the gauges cover by default"
    )
    psi_threshold: float = Field(0.2, gt=0, description="a PSI above it is drift")
    min_rows: int = Field(
        1000, ge=1, description="below it a window is insufficient_data, never ok"
    )
    queue_max: int = Field(
        10_000, ge=1, description="scored batches waiting to be binned; beyond, dropped and counted"
    )
    gauge_interval_s: float = Field(
        15.0, ge=0, description="how often a replica refreshes the PSI gauges (0: never)"
    )


class ServerSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    grpc_port: int = Field(9000, ge=0, le=65535)
    metrics_port: int = Field(
        8080, ge=0, le=65535, description="Prometheus export of Ray's metrics agent"
    )
    # "fused": features, models and bandit run inside each ingress replica (no handle
    # hops); "split": each is its own deployment behind DeploymentHandles.
    topology: Literal["fused", "split"] = "fused"
    haproxy: bool = True
    # fused: each ingress replica is a full scoring pipeline; one per core (2 here)
    ingress_replicas: int | Literal["auto"] = 2
    max_replicas: int = Field(2, ge=1)
    num_cpus: float = Field(0.5, ge=0)
    # Ray custom resources each scoring replica (ingress, and split's components) requires.
    # A worker group that alone offers them keeps these replicas on its pods, never on the
    # GPU pods (deploy/k8s: {"scoring": 0.001} and the cpu group's resources: scoring)
    replica_resources: dict[str, float] = {}
    max_ongoing_requests: int = Field(64, ge=1)
    # Ray's own per-request costs, each set by measurement (docs/benchmarks.md, "Ray's overheads"):
    # replica log level and Serve's access log line per request
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "WARNING"
    access_log: bool = False
    # Serve's own per-request HTTP metrics at the HAProxy ingress (serve_num_http_requests and
    # kin): HAProxy sends a log line per request to the HAProxyManager actor, which parses it in
    # Python: ~10% of a core at 1,000 req/s here, and ~10% fewer 1-id answers a second. Off:
    # reengage_requests_total and reengage_request_latency_ms (ours) count the same requests.
    # Read when Ray starts (RAY_SERVE_HAPROXY_METRICS_ENABLED).
    haproxy_metrics: bool = False
    # how often Serve exports the metrics it caches per replica and handle (Serve's default,
    # 100 ms). Each export replays every request's latency into Ray's histograms on the
    # replica's event loop: at 1,000 ms that was one 9-17 ms stall a second in each replica,
    # most of the 1-id tail at c=1 (docs/benchmarks.md); at 100 ms the same work comes in
    # slices a tenth the size.
    serve_metrics_export_interval_ms: int = Field(100, ge=0)
    # Ray's dashboard: `serve status` / `serve deploy` talk to its REST API. On by default
    # (measured within the run-to-run spread under load: docs/benchmarks.md)
    dashboard: bool = True
    # the interpreter's GIL switch interval in each ingress replica (None: Python's 5 ms). A
    # request that releases the GIL (LMDB, ONNX Runtime, sqlite) may wait this long to get it
    # back from a busy background thread: the knob for the tail (docs/benchmarks.md)
    switch_interval_ms: float | None = Field(None, gt=0, le=100)
    # the GCS port of the head `reengage serve` starts: not Ray's default 6379, which is
    # Redis's (the default redis_url)
    ray_port: int = Field(6390, ge=1, le=65535)
    # POST /v1/score straight to its endpoint, without FastAPI's routing and dependency work
    # per request (serving/routes/fast_path.py; the same code and answers)
    fast_path: bool = True
    # FastAPI's native OpenTelemetry (spans, metrics, logs through the global providers).
    # Off: our Prometheus metrics and request log cover the same requests, and even with no
    # provider set FastAPI asks the providers on every request (~5 us). On for OTel users
    # (then /v1/score takes FastAPI's routing, whose spans name the route: no fast path).
    fastapi_telemetry: bool = False
    # one JSON line per HTTP request (in Serve: logs/serve/reengage_requests_<replica>.jsonl of
    # the Ray session; elsewhere stderr):
    # request id, route, status, latency, customers, model versions; never bodies or tokens
    request_log: bool = True
    request_log_rotation: RotationSettings = Field(
        RotationSettings(), description="when each replica's request log rotates"
    )
    # Where replicas read the model repository, the Feast registry and the LLM checkpoint
    # (docs/cluster.md): "local" (these paths on every node: one machine, shared storage, the
    # image) or "working_dir" (shipped in the app's Ray runtime_env working_dir, unpacked on
    # each node: serving/deployments/artifacts.py)
    artifacts: Literal["local", "working_dir"] = "local"
    # graceful stop: how long a stopping ingress replica stays reachable so that HAProxy
    # (and load balancers in front) take it out before it refuses connections; it then
    # finishes its in-flight requests and flushes. Ray's default is 30 s (for external
    # load balancers), which made `reengage stop` take ~40 s and overrun Serve's 30 s
    # shutdown timeout. Read when Ray starts (RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S).
    drain_s: float = Field(2.0, ge=0, le=300)


RouteGroup = Literal["health", "metadata", "inference", "feedback", "admin"]
ROUTE_GROUPS: tuple[str, ...] = ("health", "metadata", "inference", "feedback", "admin")


class AuthGroups(_Section):
    """Per route group: "open" (anyone) or "token" (a bearer token holding the group's role).

    Secure by default: feedback (it steers the bandit) and admin (repository load/unload,
    rollouts) need a token. ``REENGAGE_AUTH__GROUPS__INFERENCE=token`` closes scoring too.
    """

    health: Literal["open", "token"] = "open"
    metadata: Literal["open", "token"] = "open"
    inference: Literal["open", "token"] = "open"
    feedback: Literal["open", "token"] = "token"
    admin: Literal["open", "token"] = "token"


class AuthToken(_Section):
    """A token the server accepts, by the SHA-256 of its text (the token itself is never stored)."""

    name: str = Field(
        pattern=r"^[A-Za-z0-9_.@-]{1,64}$", description="who holds it: audit log and logs name it"
    )
    sha256: str = Field(
        pattern=r"^[0-9a-f]{64}$", description="hex SHA-256 of the token (`reengage token hash`)"
    )
    roles: list[RouteGroup] = Field(min_length=1, description="route groups this token may call")


class AuthSettings(_Section):
    groups: AuthGroups = AuthGroups()
    # tokens from configuration (serve.yaml args, or REENGAGE_AUTH__TOKENS as JSON, e.g. from a
    # Kubernetes Secret), beside those `reengage token` keeps in the shared state
    tokens: list[AuthToken] = []
    # an older version's token file: its hashes move into the shared state at the first start
    # (the file is then renamed *.imported); default <data_dir>/auth/tokens.json
    token_file: Path | None = None
    # a first start writes an admin token (all roles) here, mode 0600, when there is none yet;
    # the CLI and the demo read it. Default <data_dir>/auth/admin.token
    admin_token_file: Path | None = None
    bootstrap_admin: bool = True
    # every admin action, one fsync'd JSON line each (`reengage audit`); default <data_dir>/audit.jsonl
    audit_log: Path | None = None
    audit_rotation: RotationSettings = Field(
        RotationSettings(), description="when the audit log rotates"
    )
    # refused calls (401/403) each source may append to the audit log per second (a burst
    # of as many); beyond it lines are suppressed and the next line says how many were
    refused_log_per_s: float = Field(
        5.0, gt=0, description="refused-call audit lines per source per second"
    )
    refused_log_sources: int = Field(
        10_000, ge=1, description="sources whose refused-call rate is tracked at once"
    )
    # proxies in front that append the caller's address to X-Forwarded-For: behind them a
    # refused call's source is the right-most address not listed here. Never Ray Serve's
    # own proxies (they append nothing): docs/operations.md, "Refused calls behind a proxy"
    trusted_proxies: list[IPvAnyNetwork] = Field(
        [], description="addresses or networks of proxies whose X-Forwarded-For is believed"
    )
    reload_interval_s: float = Field(
        0.25,
        ge=0.05,
        le=1.0,
        description=(
            "how often a replica checks the shared state for created or revoked tokens (one read): "
            "a change reaches every replica within this plus one read"
        ),
    )


class PrivacySettings(_Section):
    """Personal data: keyed pseudonyms in every log, consent, erasure, retention
    (docs/operations.md, "Personal data")."""

    # 32 hex digits; unset: generated once into key_file (0600), like the admin token
    pseudonym_key: SecretStr | None = None
    key_file: Path | None = None  # default <data_dir>/privacy/pseudonym.key
    # how long decision and request data are kept (decision log, rewards, request log
    # files); a decision whose reward window is open is kept regardless
    retention_s: float = Field(30 * 24 * 3600, gt=0)
    consent_refresh_s: float = Field(
        0.25, gt=0, le=1.0, description="how often a replica checks consent for changes"
    )


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
    monitor: MonitorSettings = MonitorSettings()
    server: ServerSettings = ServerSettings()
    auth: AuthSettings = AuthSettings()
    privacy: PrivacySettings = PrivacySettings()
    # One switch for all state (online features and bandit together): "redis" for
    # production and any multi-node cluster, "embedded" (local files) for one machine.
    # None: each section's own backend (features.backend, bandit.backend) applies.
    state: Literal["embedded", "redis"] | None = None
    redis_url: str | None = None  # when set: the one Redis both features and bandit use

    @model_validator(mode="after")
    def _one_state_switch(self) -> "Settings":
        if self.state is not None:
            self.features.backend = self.bandit.backend = self.state
        if self.redis_url is not None:
            self.features.redis_url = self.bandit.redis_url = self.redis_url
        return self

    @model_validator(mode="after")
    def _one_retention(self) -> "Settings":
        """``privacy.retention_s`` is the one retention setting; ``bandit.log_retention_s``,
        when given, still overrides it for the decision log alone."""
        if "log_retention_s" not in self.bandit.model_fields_set:
            if self.privacy.retention_s < self.bandit.reward_window_s:
                raise ValueError(
                    "privacy.retention_s must be at least bandit.reward_window_s: "
                    "a decision is kept while its reward can still arrive"
                )
            self.bandit.log_retention_s = self.privacy.retention_s
        return self

    @model_validator(mode="after")
    def _absolute_paths(self) -> "Settings":
        self.data_dir = self.data_dir.resolve()
        self.features.repo_path = self.features.repo_path.resolve()
        self.models.repo_path = self.models.repo_path.resolve()
        self.llm.model_path = self.llm.model_path.resolve()
        self.llm.lora_adapters = {k: Path(v).resolve() for k, v in self.llm.lora_adapters.items()}
        if self.bandit.state_path is None:
            self.bandit.state_path = self.data_dir / "bandit"
        self.bandit.dead_letter_file = (
            self.bandit.dead_letter_file or Path(self.bandit.state_path) / "dead_letters.jsonl"
        ).resolve()
        auth = self.auth
        auth.token_file = (auth.token_file or self.data_dir / "auth" / "tokens.json").resolve()
        auth.admin_token_file = (
            auth.admin_token_file or self.data_dir / "auth" / "admin.token"
        ).resolve()
        auth.audit_log = (auth.audit_log or self.data_dir / "audit.jsonl").resolve()
        self.privacy.key_file = (
            self.privacy.key_file or self.data_dir / "privacy" / "pseudonym.key"
        ).resolve()
        return self

    def redacted_dump(self) -> dict[str, Any]:
        """Every setting as JSON-able values, fit to print or log: URL credentials masked
        (``redis://***@h:6379/0``), tokens and API keys replaced by ``***``."""
        from feature_store.redact import redact_mapping

        return redact_mapping(self.model_dump(mode="json"))


def load_settings(overrides: dict[str, Any] | None = None) -> Settings:
    """Settings from the environment with ``overrides`` (nested dicts) on top.

    pydantic-settings deep-merges init arguments over env sources, so an override of
    ``server.port`` keeps an env-given ``server.host``.
    """
    return Settings(**(overrides or {}))
