"""Starting and stopping the Serve application on a (local or existing) Ray cluster.

``reengage serve`` starts a Ray head with ``ray start`` (so the application outlives the
CLI with ``--detach``), or joins a cluster by address; HTTP and gRPC options are given
to ``serve.start`` before ``serve.run``, since Serve ignores them afterwards.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from feature_store.redact import redact_url

from serving.settings import Settings

HAPROXY_ENV = {
    "RAY_SERVE_ENABLE_HA_PROXY": "1",
    "RAY_SERVE_THROUGHPUT_OPTIMIZED": "1",
    # A request in flight on an Ingress replica that dies got no response at all: HAProxy
    # replays it once on another replica instead of dropping the client's connection or
    # answering Ray's plain-text 500 (Ray's default retries connection failures only). It
    # narrows what a killed replica loses without closing it, and a replay may run a
    # request twice: docs/cluster.md, "Crashes: what clients see".
    "RAY_SERVE_HAPROXY_RETRY_ON": "conn-failure empty-response",
}
# Uvicorn (Ray's proxy and each replica's direct ingress) replaces the peer with the
# client's own X-Forwarded-For when the peer is loopback, as HAProxy is to the replicas on
# its node; trusting no one keeps the real peer for serving.security.client_source.
PROXY_HEADERS_ENV = {"FORWARDED_ALLOW_IPS": ""}
GRPC_SERVICER = "tritonclient.grpc.service_pb2_grpc.add_GRPCInferenceServiceServicer_to_server"


def ray_env(settings: Settings) -> dict[str, str]:
    """Environment Ray must start with: HAProxy ingress switches are read at Ray start."""
    env = dict(os.environ)
    if settings.server.haproxy:
        for key, value in HAPROXY_ENV.items():
            env.setdefault(key, value)
    env.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    for key, value in PROXY_HEADERS_ENV.items():
        env.setdefault(key, value)
    env.setdefault(
        "RAY_SERVE_HAPROXY_METRICS_ENABLED", "1" if settings.server.haproxy_metrics else "0"
    )
    # read by every replica at start: how often Serve exports the metrics it caches
    env.setdefault(
        "RAY_SERVE_METRICS_EXPORT_INTERVAL_MS",
        str(settings.server.serve_metrics_export_interval_ms),
    )
    # graceful stop: a stopping ingress replica stays reachable this long (Ray's default 30 s)
    env.setdefault("RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S", f"{settings.server.drain_s:g}")
    return env


def _ray_binary() -> str:
    local = Path(sys.executable).parent / "ray"
    return str(local) if local.exists() else (shutil.which("ray") or "ray")


class RayStartError(RuntimeError):
    """``ray start`` failed; the message ends with Ray's own output."""


def start_head(settings: Settings, num_cpus: int | None = None) -> None:
    """``ray start --head`` with its GCS on ``server.ray_port`` (never Redis's 6379).

    Raises :class:`RayStartError` with Ray's own output when it fails (a port taken, a
    cluster already running...), and before trying when the port is the Redis the state uses.
    """
    port = settings.server.ray_port
    clash = [
        url
        for url in {settings.features.redis_url, settings.bandit.redis_url}
        if _local_port(url) == port
        and "redis" in (settings.features.backend, settings.bandit.backend)
    ]
    if clash:
        raise RayStartError(
            f"server.ray_port {port} is the port of the Redis the state uses "
            f"({redact_url(clash[0])}): set REENGAGE_SERVER__RAY_PORT to another port"
        )
    dashboard = "true" if settings.server.dashboard else "false"
    cmd = [
        _ray_binary(),
        "start",
        "--head",
        "--disable-usage-stats",
        f"--include-dashboard={dashboard}",
        f"--port={port}",
        f"--metrics-export-port={settings.server.metrics_port}",
    ]
    if settings.server.dashboard:
        cmd.append(f"--dashboard-port={dashboard_port()}")
    if num_cpus is not None:
        cmd.append(f"--num-cpus={num_cpus}")
    done = subprocess.run(
        cmd,
        env=ray_env(settings),
        check=False,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    if done.returncode != 0:
        tail = "\n".join(done.stdout.strip().splitlines()[-25:])
        raise RayStartError(
            f"`{' '.join(cmd[1:])}` failed (exit {done.returncode}); Ray said:\n{tail}"
        )


def preflight(settings: Settings, timeout_s: float = 2.0) -> list[str]:
    """What the application needs and cannot reach, one line each (empty: all reachable).

    Checked before anything is started or deployed, so a dependency that is down is one
    line naming it and a non-zero exit, not a deployment that fails deep inside Ray: each
    Redis the state uses (features, bandit) answers a PING within ``timeout_s``. Lines look
    like ``Redis at 127.0.0.1:6379 (features and bandit state): connection refused``; the
    URL's credentials never appear.
    """
    uses: dict[str, list[str]] = {}
    if settings.features.backend == "redis":
        uses.setdefault(settings.features.redis_url, []).append("features")
    if settings.bandit.backend == "redis":
        uses.setdefault(settings.bandit.redis_url, []).append("bandit state")
    problems = []
    for url, what in uses.items():
        cause = redis_problem(url, timeout_s)
        if cause is not None:
            problems.append(f"Redis at {_host_port(url)} ({' and '.join(what)}): {cause}")
    return problems


def redis_problem(url: str, timeout_s: float) -> str | None:
    """Why the Redis at ``url`` does not answer a PING (None: it does), in a few words."""
    import redis

    client = redis.Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)
    try:
        client.ping()
    except redis.AuthenticationError:
        return "authentication failed (check the password in the Redis URL)"
    except redis.TimeoutError:
        return f"no answer within {timeout_s:g} s"
    except redis.ConnectionError as exc:
        text = str(exc)
        if "refused" in text.lower():
            return "connection refused"
        if "name or service not known" in text.lower() or "nodename nor servname" in text.lower():
            return "unknown host"
        return redact_url(text)
    except redis.RedisError as exc:
        return redact_url(f"{type(exc).__name__}: {exc}")
    finally:
        client.close()
    return None


def _host_port(url: str) -> str:
    from urllib.parse import urlparse

    u = urlparse(url)
    return f"{u.hostname or '127.0.0.1'}:{u.port or 6379}"


def gcs_reachable(address: str, timeout_s: float = 2.0) -> bool:
    """Whether something listens at a Ray GCS ``host:port`` (``ray.init`` would wait for
    one that is not there for minutes instead of failing)."""
    import socket

    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=timeout_s):
            return True
    except (OSError, ValueError):
        return False


def dashboard_port(preferred: int = 8265) -> int:
    """Ray's dashboard port, or a free one when another Ray cluster on the machine holds it
    (``ray start`` would fail: its dashboard does not retry other ports)."""
    import socket

    for port in (preferred, 0):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            chosen = int(s.getsockname()[1])
        if chosen != preferred:
            print(
                f"Ray's dashboard port {preferred} is taken (another Ray cluster?): using {chosen}",
                file=sys.stderr,
            )
        return chosen
    return preferred


def _local_port(url: str) -> int | None:
    """The port of a Redis URL on this machine (None for another host)."""
    from urllib.parse import urlparse

    u = urlparse(url)
    return (u.port or 6379) if u.hostname in ("127.0.0.1", "localhost", "::1", "0.0.0.0") else None


def deploy(settings: Settings, args: dict[str, Any], address: str | None = None) -> str:
    """Connect to Ray, start Serve with our HTTP options, run the app; returns its URL."""
    import ray
    from ray import serve

    from serving.app import APP_NAME, build_app

    from serving.deployments.cluster import warn_embedded_state

    os.environ.update({k: v for k, v in ray_env(settings).items() if k.startswith("RAY_SERVE")})
    with shipped(
        settings
    ) as runtime_env:  # server.artifacts=working_dir: uploaded to the GCS by ray.init
        from serving.deployments.cluster import auth_like_head

        auth_like_head()
        ray.init(
            address=address or local_head_address(settings.server.ray_port),
            logging_level=logging.WARNING,
            log_to_driver=False,
            runtime_env=runtime_env,
        )
    warn_embedded_state(settings, terminal=True)  # loud, before anything is deployed
    serve.start(
        http_options={"host": settings.server.host, "port": settings.server.port},
        grpc_options=grpc_options(settings),
    )
    serve.run(build_app(args), name=APP_NAME, route_prefix="/", blocking=False)
    return f"http://{settings.server.host}:{settings.server.port}"


@contextlib.contextmanager
def shipped(settings: Settings) -> Iterator[dict[str, Any] | None]:
    """The job runtime_env that ships the model repository, Feast registry and LLM checkpoint
    (``server.artifacts=working_dir``; Serve makes it every deployment's), else None. The
    staged folder is removed once ``ray.init`` has uploaded it."""
    if settings.server.artifacts != "working_dir":
        yield None
        return
    from serving.deployments.artifacts import runtime_env, stage

    with tempfile.TemporaryDirectory(prefix="reengage-bundle-") as tmp:
        yield runtime_env(stage(settings, Path(tmp) / "reengage"))


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


def stop(address: str | None = None, ray_port: int | None = None) -> dict[str, float]:
    """Graceful stop of the application, Serve and (for the local head) Ray; seconds per step.

    See :func:`drain_and_shutdown`; then the processes of the head ``reengage serve`` started
    (:func:`stop_local_head`), not every Ray process of the machine as ``ray stop`` would.
    """
    import ray

    start = time.monotonic()
    took: dict[str, float] = {}
    port = ray_port if ray_port is not None else Settings().server.ray_port
    # our own head, never "auto": that is the latest cluster on the machine, maybe not ours
    gcs = address or local_head_address(port)
    try:
        if not gcs_reachable(gcs):
            raise ConnectionError(f"no Ray cluster at {gcs}")
        from serving.deployments.cluster import auth_like_head

        auth_like_head()
        ray.init(address=gcs, logging_level=logging.WARNING, log_to_driver=False)
    except ConnectionError:
        took["running"] = 0  # no cluster running: nothing to drain
    else:
        try:
            took.update(drain_and_shutdown())
        finally:
            ray.shutdown()
    if address is None:  # the local head `reengage serve` started
        t0 = time.monotonic()
        took["ray_processes"] = stop_local_head(port)
        took["ray_stop_s"] = time.monotonic() - t0
    took["total_s"] = time.monotonic() - start
    return took


def local_head_address(port: int) -> str:
    """The GCS address of the head ``reengage serve`` starts on this machine (``ray start``
    binds the node's IP, which Ray itself resolves)."""
    from ray._private.services import get_node_ip_address

    return f"{get_node_ip_address()}:{port}"


def stop_local_head(port: int, timeout_s: float = 2.0) -> int:
    """Stop the Ray head whose GCS listens on ``port``: every process of its session (their
    command lines name the session directory) and their children (workers and agents, whose
    titles Ray rewrites). ``ray stop --force`` kills every Ray process of the machine, so a
    test session's or another checkout's cluster would go with ours. SIGTERM, then SIGKILL
    after ``timeout_s`` (Serve is already down and its state flushed; ``ray stop --force``
    sent SIGKILL at once). Returns how many."""
    import psutil

    sessions = set()
    for proc in psutil.process_iter(["cmdline"]):
        args = proc.info["cmdline"] or []
        if f"--gcs_server_port={port}" in args:
            sessions |= {a.split("=", 1)[1] for a in args if a.startswith("--session-dir=")}
    if not sessions:
        return 0
    # the session's directory, or its GCS address (Ray's client server names only that)
    marks = (*sessions, f":{port}")
    ours: dict[int, Any] = {}
    for proc in psutil.process_iter(["cmdline"]):
        args = proc.info["cmdline"] or []
        if any(m in a for a in args for m in sessions) or any(
            a.startswith(("--address=", "--gcs-address=")) and a.endswith(marks[-1]) for a in args
        ):
            for p in [proc, *_children(proc)]:
                ours[p.pid] = p
    ours.pop(os.getpid(), None)
    for p in ours.values():
        with contextlib.suppress(psutil.Error):
            p.terminate()
    deadline = time.monotonic() + timeout_s
    while (alive := [p for p in ours.values() if _alive(p)]) and time.monotonic() < deadline:
        time.sleep(0.1)
    for p in alive:
        with contextlib.suppress(psutil.Error):
            p.kill()
    return len(ours)


def _alive(proc: Any) -> bool:
    """Running and not a zombie (an orphaned agent nobody reaps counts as gone)."""
    import psutil

    try:
        return bool(proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE)
    except psutil.Error:
        return False


def _children(proc: Any) -> list[Any]:
    import psutil

    try:
        return list(proc.children(recursive=True))
    except psutil.Error:
        return []


def drain_and_shutdown(settle_s: float = 2.0, timeout_s: float = 30.0) -> dict[str, float]:
    """Drain the application, then stop Serve (this process is connected to the cluster).

    1. Every ingress replica is told to drain (``serving.deployments.drain_signal``): new
       requests get a 503 ``draining`` (JSON, ``Retry-After: 1``, ``Connection: close``),
       readiness answers 503, requests already inside run to the end. This waits until
       every replica reports nothing in flight (at least ``settle_s``, so load balancers
       see readiness fail; at most ``timeout_s``).
    2. ``serve.shutdown``: the replicas, now idle, stop (each ingress replica stays
       reachable ``server.drain_s`` first) and run their destructor, which flushes the
       bandit's queued decision log; then the proxies and the controller.

    ``serve.shutdown`` alone removed the proxies at the same moment as the replicas, so
    in-flight requests were reset; and it waited on the ingress drain (Ray's 30 s minimum
    in HAProxy mode) past its own 30 s timeout: "Controller failed to shut down within 30.0s".
    Deleting the application first instead keeps the proxies, but they answer a plain
    404 "Path not found" to every new request meanwhile.
    """
    from ray import serve
    from ray.serve.exceptions import RayServeException

    from serving.app import APP_NAME
    from serving.deployments import drain_signal

    took: dict[str, float] = {}
    try:
        serve.status()
    except RayServeException:
        return took  # Serve is not running on this cluster
    took.update(drain_signal.drain(APP_NAME, settle_s, timeout_s))
    t0 = time.monotonic()
    serve.shutdown()
    took["serve_shutdown_s"] = time.monotonic() - t0
    drain_signal.clear(APP_NAME)
    return took
