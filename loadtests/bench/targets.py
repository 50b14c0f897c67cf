"""The HTTP targets of `reengage bench score`, started and checked before any is measured.

Why apart from the run: starting them is most of the bench's moving parts (a private Ray
head with our application and hello-world beside it, the plain app on uvicorn) and is
reused on its own (tests/e2e/stop_scenario.py starts ours through :func:`ray_serve`).
Every target answers one real request per ids size before the rounds begin, so a broken
target shows as a failed check rather than as fast errors.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from rich.console import Console

from loadtests.bench.refs import (
    free_ports,
    http_ok,
    plain_config,
    plain_server,
    stop_group,
    wait_up,
)
from serving.settings import Settings

PATHS = {"ours": "/v1/score", "hello": "/hello/v1/score", "plain": "/v1/score"}


@contextlib.contextmanager
def ray_serve(
    settings: Settings, workdir: Path, hello: bool, args: dict[str, Any] | None = None
) -> Iterator[str]:
    """A private Ray head (as `reengage serve` starts one, on free ports, ``--block`` so
    that it ends with the process we hold), our application, and hello beside it. The app
    gets ``args`` (the overrides ``settings`` came from, as `reengage serve` passes them)
    with the chosen ports, or else the settings' dump (which masks secret values)."""
    import httpx

    from serving import server

    gcs, http, grpc, metrics, client, agent, hap_metrics, hap_stats, dashboard_port = free_ports(9)
    # HAProxy's own metrics and stats ports are fixed (9101, 8404) unless set: a second
    # Serve instance on the host (another checkout's `reengage serve`) would hold them
    os.environ.update(
        {
            "RAY_SERVE_HAPROXY_METRICS_PORT": str(hap_metrics),
            "RAY_SERVE_HAPROXY_STATS_PORT": str(hap_stats),
        }
    )
    settings = settings.model_copy(deep=True)
    settings.server.host, settings.server.port, settings.server.grpc_port = "127.0.0.1", http, grpc
    settings.server.metrics_port = metrics
    replicas = settings.server.ingress_replicas
    replicas = replicas if isinstance(replicas, int) else settings.server.max_replicas
    need = replicas * settings.server.num_cpus * (2 if hello else 1)
    # short: Ray's socket paths live under it
    tmp = Path(tempfile.mkdtemp(prefix="rb-", dir="/tmp"))
    # server.start_head's command, plus --block and private ports and temp dir
    dashboard = "true" if settings.server.dashboard else "false"
    cmd = [
        server._ray_binary(),
        "start",
        "--head",
        "--block",
        "--disable-usage-stats",
        f"--include-dashboard={dashboard}",
        f"--port={gcs}",
        f"--metrics-export-port={metrics}",
        f"--ray-client-server-port={client}",
        f"--dashboard-agent-listen-port={agent}",
        f"--temp-dir={tmp}",
        f"--dashboard-port={dashboard_port}",
    ]  # the dashboard is on by default: not 8265, which may be taken
    if need > (os.cpu_count() or 1):  # logical CPUs only: the replicas must all be placed
        cmd.append(f"--num-cpus={math.ceil(need)}")
    log = workdir / "ray-head.log"
    with log.open("wb") as sink:
        head = subprocess.Popen(
            cmd,
            env=server.ray_env(settings),
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_up(lambda: (tmp / "ray_current_cluster").exists(), head, "ray start --head", log, 180)
        from serving.deployments.cluster import auth_like_head

        auth_like_head()
        from ray import serve  # configures Serve's driver logger: quiet it after the import

        # no INFO lines over the progress bar
        logging.getLogger("ray.serve").setLevel(logging.WARNING)
        chosen = {"host": "127.0.0.1", "port": http, "grpc_port": grpc, "metrics_port": metrics}
        deploy_args = (
            {**args, "server": {**args.get("server", {}), **chosen}}
            if args is not None
            else settings.model_dump(mode="json")
        )
        url = server.deploy(settings, deploy_args, address=f"127.0.0.1:{gcs}")
        if hello:
            from loadtests.bench.refs import hello_app

            serve.run(
                hello_app(
                    replicas=replicas,
                    num_cpus=settings.server.num_cpus,
                    max_ongoing_requests=settings.server.max_ongoing_requests,
                ),
                name="hello",
                route_prefix="/hello",
                blocking=False,
            )
        server.wait_ready(url)
        if hello:
            wait_up(
                lambda: http_ok(httpx.post(f"{url}/hello/v1/score", json={}, timeout=5)),
                head,
                "hello-world Serve",
                log,
                120,
            )
        yield url
    finally:
        import ray
        from ray import serve

        with contextlib.suppress(Exception):
            serve.shutdown()
        with contextlib.suppress(Exception):
            ray.shutdown()
        stop_group(head)
        shutil.rmtree(tmp, ignore_errors=True)


def start_http(
    servers: contextlib.ExitStack,
    settings: Settings,
    models: list[dict[str, Any]],
    plain_ort_threads: int,
    workdir: Path,
    targets: list[str],
    bodies: dict[int, list[str]],
    meta: dict[str, Any],
    console: Console,
    say: Callable[[str], None],
) -> dict[str, str]:
    """Start the HTTP targets chosen, all up together until ``servers`` closes; their URLs."""
    urls: dict[str, str] = {}
    if "plain" in targets:
        say("starting the plain FastAPI app on uvicorn...")
        urls["plain"] = servers.enter_context(
            plain_server(_plain_config(settings, models, plain_ort_threads), workdir)
        )
        _check(console, urls["plain"] + PATHS["plain"], bodies, meta)
    if "ours" in targets or "hello" in targets:
        say("starting Ray, our application and hello-world beside it...")
        url = servers.enter_context(ray_serve(settings, workdir, hello="hello" in targets))
        _check(console, url + PATHS["ours"], bodies, meta)
        urls.update({target: url for target in ("ours", "hello") if target in targets})
    return urls


def _plain_config(settings: Settings, models: list[dict[str, Any]], ort_threads: int) -> str:
    return plain_config(
        settings={"features": settings.features.model_dump(mode="json")},
        models=models,
        ort_threads=ort_threads,
    )


def _check(console: Console, url: str, bodies: dict[int, list[str]], meta: dict[str, Any]) -> None:
    """One real request per ids size: 200, and every id found (the bodies name existing
    customers)."""
    import httpx

    for n, group in bodies.items():
        r = httpx.post(
            url, content=group[0], headers={"Content-Type": "application/json"}, timeout=60
        )
        found = sum(r.json().get("found", [])) if r.status_code == 200 else 0
        if r.status_code != 200 or found != n:
            console.print(
                f"[red]{url} with {n} ids: HTTP {r.status_code}, {found} of {n} found[/] "
                f"{r.text[:300]}"
            )
        meta["checks"].append({"url": url, "ids": n, "status": r.status_code, "found": found})
