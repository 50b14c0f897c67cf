"""`reengage bench score`: /v1/score beside its references, measured in one run.

At each ids-per-request and concurrency, on the same built workspace, every request a
body of distinct random existing customer ids:
  ours   /v1/score on a fresh application started as `reengage serve` starts it (a Ray
         head, then serving.server.deploy: topology, ingress replicas, HAProxy as set);
  hello  a hello-world Serve deployment with a FastAPI ingress, deployed beside ours on
         the same Serve instance and ingress (/hello/v1/score, same replicas and num_cpus):
         the framework limit;
  plain  a plain FastAPI app on uvicorn (1 worker, no Ray) doing the same feature read,
         both models and orjson: what a user would write instead (loadtests/bench/refs.py);
  ort2, ort1  raw ONNX Runtime, both models on the same rows, 2 threads and 1 thread:
         the compute limit.
HTTP load comes from wrk (loadtests/bench/wrk.py); the CPU wrk itself used is reported
beside every point, so a load generator near its limit shows.
Order: ORT; then the plain app and Ray (ours and hello) are all up, and at each point the
HTTP targets are measured in turn, ``rounds`` times, each round starting with the next
target: a drift of the machine over minutes (these shared cores move a reference by a
third between runs) falls on all of them alike, and each round's ratios pair windows
seconds apart.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import itertools
import json
import logging
import math
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from loadtests.bench.applog import AppLatency, serve_logs_dir
from loadtests.bench.report import LABELS, aggregate, plot_or_say, print_tables, ratios
from loadtests.bench.refs import (
    free_ports,
    http_ok,
    ort_point,
    packed_reader,
    plain_config,
    plain_server,
    score_models,
    stop_group,
    wait_up,
)
from loadtests.bench.wrk import bodies_per_point, lua_script, request_bodies, run_wrk
from serving.settings import Settings

TARGETS = ("ours", "hello", "plain", "ort")
PATHS = {"ours": "/v1/score", "hello": "/hello/v1/score", "plain": "/v1/score"}
WRK_MISSING = (
    "wrk is not installed: the bench needs it as its load generator (apt-get install wrk)."
)


# -- measuring -----------------------------------------------------------------------------
@contextlib.contextmanager
def _ray_serve(
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
    tmp = Path(
        tempfile.mkdtemp(prefix="rb-", dir="/tmp")
    )  # short: Ray's socket paths live under it
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

        logging.getLogger("ray.serve").setLevel(
            logging.WARNING
        )  # no INFO lines over the progress bar
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


# -- the run -------------------------------------------------------------------------------
class BenchError(RuntimeError):
    """A choice the bench cannot run with (unknown target, too many ids, no wrk)."""


def run_score_bench(
    settings: Settings,
    *,
    ids: list[int],
    concurrency: list[int],
    targets: list[str] | None = None,
    seconds: float = 5.0,
    warmup: float = 1.0,
    rounds: int = 3,
    wrk_threads: int = 1,
    plain_ort_threads: int = 0,
    out_json: Path | None = None,
    plot: bool = True,
    console: Console | None = None,
) -> dict[str, Any]:
    """Measure every chosen target at every (ids, concurrency), ``rounds`` times in turn;
    print, write JSON and PNG."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    console = console or Console()
    targets = list(targets or TARGETS)
    if set(targets) - set(TARGETS):
        raise BenchError(
            f"unknown targets {sorted(set(targets) - set(TARGETS))}; choose from {', '.join(TARGETS)}"
        )
    if (
        not ids
        or not concurrency
        or not all(1 <= n <= min(10_000, settings.data.customers) for n in ids)
    ):
        raise BenchError(
            f"ids per request must be 1..{min(10_000, settings.data.customers):,}; concurrency not empty"
        )
    if rounds < 1:
        raise BenchError("rounds must be at least 1")
    if set(targets) - {"ort"} and shutil.which("wrk") is None:
        raise BenchError(WRK_MISSING)
    workdir = Path(tempfile.mkdtemp(prefix="reengage-bench-"))
    # the bench's decisions go to a throwaway bandit state, not the server's learned one
    settings = settings.model_copy(
        update={
            "bandit": settings.bandit.model_copy(update={"state_path": workdir / "bandit"}),
            "llm": settings.llm.model_copy(update={"enabled": False}),
        }
    )
    models = score_models(settings)
    bodies, scripts = {}, {}
    for n in ids:
        bodies[n] = request_bodies(settings.data.customers, n, bodies_per_point(n), seed=n)
        (workdir / f"bodies-{n}.txt").write_text("\n".join(bodies[n]) + "\n")
        for path in set(PATHS.values()):
            scripts[n, path] = workdir / f"wrk-{n}-{path.strip('/').replace('/', '_')}.lua"
            scripts[n, path].write_text(lua_script(workdir / f"bodies-{n}.txt", path))
    http = [t for t in ("ours", "hello", "plain") if t in targets]
    total = len(ids) * (2 * ("ort" in targets) + len(http) * len(concurrency) * rounds)
    estimate = total * seconds + len(ids) * len(concurrency) * len(http) * rounds * (
        max(1, warmup) if warmup else 0
    )
    console.print(
        f"[bold]reengage bench score[/]: {total} points, about {estimate / 60 + 2:.0f} min "
        f"(incl. ~2 min to start and stop Ray); scratch files in {workdir}"
    )
    meta = _meta(
        settings, ids, concurrency, targets, seconds, warmup, wrk_threads, plain_ort_threads, models
    )
    meta["rounds"] = rounds
    points: list[dict[str, Any]] = []
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console) as progress:
        task = progress.add_task("", total=total)

        def http_point(
            target: str, url: str, n: int, c: int, r: int, app: AppLatency | None
        ) -> None:
            path = PATHS[target]
            progress.update(
                task,
                description=f"{LABELS[target]}: {n:,} ids, c={c}"
                + (f", round {r + 1}/{rounds}" if rounds > 1 else ""),
            )

            def window(
                secs: float,
            ) -> dict[str, Any]:  # wrk's figures, and our replicas' own for the same window
                mark = app.mark() if app else {}
                wrk = run_wrk(
                    url + path, scripts[n, path], concurrency=c, seconds=secs, threads=wrk_threads
                )
                return {**wrk, **(app.summary(mark) if app else {})}

            if warmup > 0:
                run_wrk(
                    url + path, scripts[n, path], concurrency=c, seconds=warmup, threads=wrk_threads
                )
            got = window(seconds)
            if (
                got["requests"] < 2 * c
            ):  # the window held one wave of requests at most: once more, 4x longer
                got = {**window(4 * seconds), "extended": True}
            points.append(
                {
                    "target": target,
                    "ids": n,
                    "concurrency": c,
                    "round": r,
                    **got,
                    "pred_s": got["req_s"] * n,
                }
            )
            progress.advance(task)

        if "ort" in targets:
            reader = packed_reader(
                settings.features, list(dict.fromkeys(m["feature_service"] for m in models))
            )
            for n in ids:
                batches = [
                    reader.read(np.asarray(json.loads(b)["customer_ids"], np.int64))
                    for b in bodies[n][:8]
                ]
                for threads in (2, 1):
                    progress.update(task, description=f"{LABELS[f'ort{threads}']}: {n:,} rows")
                    points.append(
                        {
                            "target": f"ort{threads}",
                            "ids": n,
                            "concurrency": None,
                            **ort_point(models, batches, threads, seconds),
                        }
                    )
                    progress.advance(task)
        with contextlib.ExitStack() as servers:
            urls = _start_http(
                servers,
                settings,
                models,
                plain_ort_threads,
                workdir,
                targets,
                bodies,
                meta,
                console,
                lambda text: progress.update(task, description=text),
            )
            app = AppLatency(serve_logs_dir()) if "ours" in urls else None
            for n, c in itertools.product(ids, concurrency):
                for r in range(rounds):  # each round in another order: none always runs first
                    for target in http[r % len(http) :] + http[: r % len(http)]:
                        http_point(target, urls[target], n, c, r, app if target == "ours" else None)
            progress.update(task, description="stopping the servers (Ray: 10-40 s)...")
        meta["stopped"] = {target: True for target in urls}
        progress.update(task, description="done")
    meta["loadavg_end"] = os.getloadavg()
    result = {
        "meta": meta,
        "points": aggregate(points),
        "ratios": ratios(points),
        **({"rounds": points} if rounds > 1 else {}),
    }
    print_tables(result, console)
    if out_json is not None:
        out_json.parent.mkdir(parents=True, exist_ok=True)
        out_json.write_text(json.dumps(result, indent=1) + "\n")
        console.print(f"results: {out_json}")
        if plot:
            plot_or_say(result, out_json.with_suffix(".png"), console)
    shutil.rmtree(workdir, ignore_errors=True)
    return result


def _start_http(
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
        url = servers.enter_context(_ray_serve(settings, workdir, hello="hello" in targets))
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
    """One real request per ids size: 200, and every id found (the bodies name existing customers)."""
    import httpx

    for n, group in bodies.items():
        r = httpx.post(
            url, content=group[0], headers={"Content-Type": "application/json"}, timeout=60
        )
        found = sum(r.json().get("found", [])) if r.status_code == 200 else 0
        if r.status_code != 200 or found != n:
            console.print(
                f"[red]{url} with {n} ids: HTTP {r.status_code}, {found} of {n} found[/] {r.text[:300]}"
            )
        meta["checks"].append({"url": url, "ids": n, "status": r.status_code, "found": found})


def _meta(
    settings: Settings,
    ids: list[int],
    concurrency: list[int],
    targets: list[str],
    seconds: float,
    warmup: float,
    wrk_threads: int,
    plain_ort_threads: int,
    models: list[dict[str, Any]],
) -> dict[str, Any]:
    from importlib.metadata import version

    wrk = (
        shutil.which("wrk")
        and subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout.splitlines()
    )
    s = settings.server
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "cores": os.cpu_count(),
        "loadavg_start": os.getloadavg(),
        "ids": ids,
        "concurrency": concurrency,
        "targets": targets,
        "seconds": seconds,
        "warmup_s": warmup,
        "wrk_threads": wrk_threads,
        "wrk": wrk[0] if wrk else None,
        "customers": settings.data.customers,
        "versions": {p: version(p) for p in ("ray", "onnxruntime", "fastapi", "uvicorn", "numpy")},
        "ours": {
            "topology": s.topology,
            "ingress_replicas": s.ingress_replicas,
            "haproxy": s.haproxy,
            "num_cpus": s.num_cpus,
            "max_ongoing_requests": s.max_ongoing_requests,
            "ort_threads": settings.models.intra_op_threads,
            "feature_backend": settings.features.backend,
        },
        "plain": {
            "workers": 1,
            "ort_threads": plain_ort_threads or "onnxruntime default",
            "access_log": False,
        },
        "models": {m["name"]: m["version"] for m in models},
        "checks": [],
        "stopped": {},
    }


# -- output --------------------------------------------------------------------------------
@contextlib.contextmanager
def private_redis(url: str | None) -> Iterator[str | None]:
    """The given Redis, or a private redis-server on a free port when one is installed."""
    import shutil
    import socket
    import subprocess
    import tempfile

    if url is not None or shutil.which("redis-server") is None:
        yield url
        return
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                tmp,
            ],
            stdout=subprocess.DEVNULL,
        )
        try:
            time.sleep(0.5)
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            proc.terminate()
            proc.wait(timeout=10)


async def _reengage_load(
    url: str, ids: list[int], concurrency: int
) -> tuple[list[float], int, int]:
    import httpx

    lat: list[float] = []
    tokens = errors = 0
    queue = list(ids)

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal tokens, errors
        while queue:
            cid = queue.pop()
            t = time.perf_counter()
            r = await client.post(
                "/v1/reengage", json={"customer_id": cid, "action": "winback_email"}
            )
            lat.append(time.perf_counter() - t)
            if r.status_code == 200:
                tokens += int(r.json()["llm"].get("completion_tokens") or 0)
            else:
                errors += 1

    async with httpx.AsyncClient(base_url=url, timeout=120) as client:
        await client.post(
            "/v1/reengage", json={"customer_id": 1, "action": "winback_email"}
        )  # warm up
        start = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
        total = time.perf_counter() - start
    lat.append(total)  # the wall time travels as the last item
    return lat, tokens, errors


def run_reengage_bench(
    url: str, *, requests: int = 48, concurrency: int = 4, console: Console | None = None
) -> dict[str, Any]:
    """/v1/reengage over HTTP on a running server: latency and generated tokens/s."""
    console = console or Console()
    out: dict[str, Any] = {}
    for c in sorted({1, concurrency}):
        with console.status(f"/v1/reengage, {requests} customers, {c} concurrent..."):
            lat, tokens, errors = asyncio.run(_reengage_load(url, list(range(2, requests + 2)), c))
        wall = lat.pop()
        out[f"c={c}"] = {
            "requests": len(lat),
            "errors": errors,
            "p50_ms": 1e3 * statistics.median(lat),
            "p99_ms": 1e3 * float(np.percentile(lat, 99)),
            "tokens_per_s": tokens / wall,
            "emails_per_s": len(lat) / wall,
        }
    table = Table(
        "concurrency",
        "emails/s",
        "tokens/s",
        "p50 ms",
        "p99 ms",
        "errors",
        title="POST /v1/reengage (HTTP)",
    )
    for k, v in out.items():
        table.add_row(
            k,
            f"{v['emails_per_s']:.1f}",
            f"{v['tokens_per_s']:.0f}",
            f"{v['p50_ms']:.0f}",
            f"{v['p99_ms']:.0f}",
            str(v["errors"]),
        )
    console.print(table)
    return out
