"""Starting and stopping the Serve application on a (local or existing) Ray cluster.

``reengage serve`` starts a Ray head with ``ray start`` (so the application outlives the
CLI with ``--detach``), or joins a cluster by address; HTTP and gRPC options are given
to ``serve.start`` before ``serve.run``, since Serve ignores them afterwards.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from serving.settings import Settings

HAPROXY_ENV = {"RAY_SERVE_ENABLE_HA_PROXY": "1", "RAY_SERVE_THROUGHPUT_OPTIMIZED": "1"}
GRPC_SERVICER = "tritonclient.grpc.service_pb2_grpc.add_GRPCInferenceServiceServicer_to_server"


def ray_env(settings: Settings) -> dict[str, str]:
    """Environment Ray must start with: HAProxy ingress switches are read at Ray start."""
    env = dict(os.environ)
    if settings.server.haproxy:
        for key, value in HAPROXY_ENV.items():
            env.setdefault(key, value)
    env.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    # read by every replica at start: how often Serve exports the metrics it caches
    env.setdefault("RAY_SERVE_METRICS_EXPORT_INTERVAL_MS", str(settings.server.serve_metrics_export_interval_ms))
    return env


def _ray_binary() -> str:
    local = Path(sys.executable).parent / "ray"
    return str(local) if local.exists() else (shutil.which("ray") or "ray")


def start_head(settings: Settings, num_cpus: int | None = None) -> None:
    dashboard = "true" if settings.server.dashboard else "false"
    cmd = [_ray_binary(), "start", "--head", "--disable-usage-stats", f"--include-dashboard={dashboard}",
           f"--metrics-export-port={settings.server.metrics_port}"]
    if num_cpus is not None:
        cmd.append(f"--num-cpus={num_cpus}")
    subprocess.run(cmd, env=ray_env(settings), check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def deploy(settings: Settings, args: dict[str, Any], address: str | None = None) -> str:
    """Connect to Ray, start Serve with our HTTP options, run the app; returns its URL."""
    import ray
    from ray import serve

    from serving.app import APP_NAME, build_app

    os.environ.update({k: v for k, v in ray_env(settings).items() if k.startswith("RAY_SERVE")})
    ray.init(address=address or "auto", logging_level="WARNING", log_to_driver=False)
    serve.start(http_options={"host": settings.server.host, "port": settings.server.port},
                grpc_options=grpc_options(settings))
    serve.run(build_app(args), name=APP_NAME, route_prefix="/", blocking=False)
    return f"http://{settings.server.host}:{settings.server.port}"


def grpc_options(settings: Settings) -> dict[str, Any]:
    """KServe v2 gRPC on ``server.grpc_port`` with tritonclient's own servicer."""
    return {"port": settings.server.grpc_port, "grpc_servicer_functions": [GRPC_SERVICER]}


def wait_ready(url: str, timeout_s: float = 300.0) -> None:
    """Until /v2/health/ready answers 200 (every model loaded, the graph up)."""
    deadline = time.monotonic() + timeout_s
    last = "no answer"
    while time.monotonic() < deadline:
        try:
            r = httpx.get(f"{url}/v2/health/ready", timeout=2.0)
            if r.status_code == 200:
                return
            last = f"HTTP {r.status_code}"
        except httpx.HTTPError as exc:
            last = type(exc).__name__
        time.sleep(0.5)
    raise TimeoutError(f"the application at {url} was not ready within {timeout_s:.0f} s ({last})")


def stop(address: str | None = None) -> None:
    import ray
    from ray import serve

    try:
        ray.init(address=address or "auto", logging_level="WARNING", log_to_driver=False)
        serve.shutdown()
        ray.shutdown()
    except ConnectionError:
        pass  # no cluster running: nothing to stop
    if address is None:  # the local head `reengage serve` started
        subprocess.run([_ray_binary(), "stop", "--force"], check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
