"""The server: ports, topology, replicas, Ray's own per-request costs, the request log,
artifacts and draining; and who may call what (route groups, tokens, the audit log)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, IPvAnyNetwork

from serving.settings.base import RotationSettings, Section


class ServerSettings(Section):
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
    # fused: each ingress replica is a full scoring pipeline; one per core of the machine
    ingress_replicas: int | Literal["auto"] = 2
    max_replicas: int = Field(2, ge=1)
    num_cpus: float = Field(0.5, ge=0)
    # Ray custom resources each scoring replica (ingress, and split's components) requires.
    # A worker group that alone offers them keeps these replicas on its pods, never on the
    # GPU pods (deploy/k8s: {"scoring": 0.001} and the cpu group's resources: scoring)
    replica_resources: dict[str, float] = {}
    max_ongoing_requests: int = Field(64, ge=1)
    # Ray's own per-request costs: replica log level and Serve's access log line per request
    # (quiet by default: less CPU and disk; docs/benchmarks.md, "Ray's own overheads")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "WARNING"
    access_log: bool = False
    # Serve's own per-request HTTP metrics at the HAProxy ingress (serve_num_http_requests and
    # kin): HAProxy sends a log line per request to the HAProxyManager actor, which parses it in
    # Python, a CPU cost that grows with the request rate (docs/benchmarks.md, "Single
    # customers: what moved"). Off: reengage_requests_total and reengage_request_latency_ms
    # (ours) count the same requests. Read when Ray starts (RAY_SERVE_HAPROXY_METRICS_ENABLED).
    haproxy_metrics: bool = False
    # how often Serve exports the metrics it caches per replica and handle (Serve's default).
    # Each export replays every request since the last one into Ray's histograms on the
    # replica's event loop, stalling it; a short interval cuts that work into small slices
    # instead of one long stall, which sets the one-connection tail (docs/benchmarks.md,
    # "The one-connection tail").
    serve_metrics_export_interval_ms: int = Field(100, ge=0)
    # Ray's dashboard: `serve status` / `serve deploy` talk to its REST API. On by default: its
    # cost under load is within the run-to-run spread (docs/benchmarks.md, "Ray's own overheads")
    dashboard: bool = True
    # the interpreter's GIL switch interval in each ingress replica (None: Python's 5 ms). A
    # request that releases the GIL (LMDB, ONNX Runtime, sqlite) may wait this long to get it
    # back from a busy background thread: the knob for the tail (docs/benchmarks.md,
    # "Single customers: what moved")
    switch_interval_ms: float | None = Field(None, gt=0, le=100)
    # the GCS port of the head `reengage serve` starts: not Ray's default 6379, which is
    # Redis's (the default redis_url)
    ray_port: int = Field(6390, ge=1, le=65535)
    # POST /v1/score straight to its endpoint, without FastAPI's routing and dependency work
    # per request (serving/middleware/fast_path.py; the same code and answers)
    fast_path: bool = True
    # FastAPI's native OpenTelemetry (spans, metrics, logs through the global providers).
    # Off: our Prometheus metrics and request log cover the same requests, and even with no
    # provider set FastAPI asks the providers on every request (docs/benchmarks.md, "Single
    # customers: what moved"). On for OTel users (then /v1/score takes FastAPI's routing,
    # whose spans name the route: no fast path).
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
    # finishes its in-flight requests and flushes. Ray's default (30 s, for external load
    # balancers) would leave `reengage stop` longer than Serve's own 30 s shutdown timeout.
    # Read when Ray starts (RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S).
    drain_s: float = Field(2.0, ge=0, le=300)


RouteGroup = Literal["health", "metadata", "inference", "feedback", "admin"]
ROUTE_GROUPS: tuple[str, ...] = ("health", "metadata", "inference", "feedback", "admin")


class AuthGroups(Section):
    """Per route group: "open" (anyone) or "token" (a bearer token holding the group's role).

    Secure by default: feedback (it steers the bandit) and admin (repository load/unload,
    rollouts) need a token. ``REENGAGE_AUTH__GROUPS__INFERENCE=token`` closes scoring too.
    """

    health: Literal["open", "token"] = "open"
    metadata: Literal["open", "token"] = "open"
    inference: Literal["open", "token"] = "open"
    feedback: Literal["open", "token"] = "token"
    admin: Literal["open", "token"] = "token"


class AuthToken(Section):
    """A token the server accepts, by the SHA-256 of its text (the token itself is never stored)."""

    name: str = Field(
        pattern=r"^[A-Za-z0-9_.@-]{1,64}$", description="who holds it: audit log and logs name it"
    )
    sha256: str = Field(
        pattern=r"^[0-9a-f]{64}$", description="hex SHA-256 of the token (`reengage token hash`)"
    )
    roles: list[RouteGroup] = Field(min_length=1, description="route groups this token may call")


class AuthSettings(Section):
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
    # every admin action, one fsync'd JSON line each (`reengage audit`);
    # default <data_dir>/audit.jsonl
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
