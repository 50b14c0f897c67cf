"""`reengage bench score`: /v1/score throughput beside the limits it competes with.

Measured in one run, on the same ids and the same built workspace:
  1. raw ONNX Runtime, churn + engagement on the same batch (the compute limit),
  2. the feature read alone (packed reader),
  3. the whole scoring path in-process, no HTTP (DataPlane over local services),
  4. /v1/score over HTTP on a fresh Serve application (topology and ingress as set).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import statistics
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from serving.settings import Settings


def _rate(fn: Callable[[], Any], seconds: float, rows: int) -> tuple[float, float, float]:
    """(rows/s, p50 ms, p99 ms) of calling ``fn`` back to back for ``seconds``."""
    fn()  # warm up
    lat: list[float] = []
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        t = time.perf_counter()
        fn()
        lat.append(time.perf_counter() - t)
    total = time.perf_counter() - start
    return rows * len(lat) / total, 1e3 * statistics.median(lat), 1e3 * float(np.percentile(lat, 99))


def _onnx_limit(settings: Settings, batch: Any, seconds: float) -> tuple[float, float, float]:
    import onnxruntime as ort

    from serving.repository import read_model

    runs = []
    for name in (settings.models.churn, settings.models.engagement):
        spec = read_model(settings.models.repo_path, name)
        version = spec.versions[spec.newest]
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = settings.models.intra_op_threads
        session = ort.InferenceSession(str(version.model_file), opts, providers=["CPUExecutionProvider"])
        x = batch.columns(version.features)
        runs.append((session, x))
    return _rate(lambda: [s.run(None, {"features": x}) for s, x in runs], seconds, len(batch))


async def _http_load(url: str, ids: list[list[int]], seconds: float, concurrency: int) -> tuple[float, float, float, int]:
    import httpx

    lat: list[float] = []
    errors = 0
    stop = time.perf_counter() + seconds

    async def worker(client: httpx.AsyncClient, k: int) -> None:
        nonlocal errors
        i = k
        while time.perf_counter() < stop:
            t = time.perf_counter()
            r = await client.post("/v1/score", json={"customer_ids": ids[i % len(ids)]})
            lat.append(time.perf_counter() - t)
            errors += r.status_code != 200
            i += concurrency

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:
        await client.post("/v1/score", json={"customer_ids": ids[0]})
        start = time.perf_counter()
        await asyncio.gather(*(worker(client, k) for k in range(concurrency)))
        total = time.perf_counter() - start
    n = len(ids[0])
    return n * len(lat) / total, 1e3 * statistics.median(lat), 1e3 * float(np.percentile(lat, 99)), errors


def _id_batches(settings: Settings, ids: int, count: int = 32) -> list[list[int]]:
    rng = np.random.default_rng(0)
    return [rng.integers(1, settings.data.customers + 1, size=ids).tolist() for _ in range(count)]


def run_score_bench(settings: Settings, *, ids: int, seconds: float, concurrency: int,
                    console: Console | None = None, url: str | None = None) -> list[dict[str, Any]]:
    import tempfile

    console = console or Console()
    # The bench's decisions go to a throwaway bandit state, not the server's learned one.
    scratch = tempfile.mkdtemp(prefix="reengage-bench-")
    settings = settings.model_copy(update={"bandit": settings.bandit.model_copy(update={"state_path": Path(scratch)})})
    batches = _id_batches(settings, ids)
    rows: list[dict[str, Any]] = []

    from serving.deployments.local import model_feature_services
    from serving.services import FeatureService

    features = FeatureService(settings.features, model_feature_services(settings))
    first = np.asarray(batches[0], dtype=np.int64)
    batch = features.reader.read(first)
    with console.status("raw ONNX Runtime, both models..."):
        rate, p50, p99 = _onnx_limit(settings, batch, seconds)
    rows.append({"what": f"raw ONNX Runtime, churn + engagement, {ids} rows", "per_s": rate, "p50_ms": p50, "p99_ms": p99})
    with console.status("feature read..."):
        rate, p50, p99 = _rate(lambda: features.reader.read(first), seconds, ids)
    rows.append({"what": f"feature read ({settings.features.reader}, {settings.features.backend}), {ids} ids", "per_s": rate, "p50_ms": p50, "p99_ms": p99})
    with console.status("whole path in-process (no HTTP, no Ray)..."):
        rate, p50, p99 = _in_process(settings, features, first, seconds)
    rows.append({"what": f"scoring path in-process (features, models, bandit, JSON), {ids} ids", "per_s": rate,
                 "p50_ms": p50, "p99_ms": p99})

    with _serving(settings, url, console) as base:
        for c in sorted({1, concurrency}):
            with console.status(f"/v1/score over HTTP, {c} connections..."):
                rate, p50, p99, errors = asyncio.run(_http_load(base, batches, seconds, c))
            rows.append({"what": f"/v1/score HTTP ({settings.server.topology}, {settings.server.ingress_replicas} ingress "
                                 f"replicas, haproxy={settings.server.haproxy}), {ids} ids, c={c}",
                         "per_s": rate, "p50_ms": p50, "p99_ms": p99, "errors": errors})
    _print(rows, console, f"reengage bench score  ({os.cpu_count()} cores)")
    return rows


def _in_process(settings: Settings, features: Any, ids: np.ndarray, seconds: float) -> tuple[float, float, float]:
    import orjson

    from serving.dataplane import DataPlane
    from serving.repository import scan
    from serving.services import BanditService, ModelServer

    models = {name: ModelServer(name, settings.models) for name in scan(settings.models.repo_path)}
    bandit = BanditService(settings.bandit) if settings.bandit.enabled else None
    plane = DataPlane(settings, features, models, bandit)
    loop = asyncio.new_event_loop()

    def once() -> None:
        result = loop.run_until_complete(plane.score(ids))
        orjson.dumps(result.columns(), option=orjson.OPT_SERIALIZE_NUMPY)

    try:
        return _rate(once, seconds, len(ids))
    finally:
        loop.close()


@contextlib.contextmanager
def _serving(settings: Settings, url: str | None, console: Console) -> Iterator[str]:
    """A given URL, or a fresh local Ray + Serve app for the measurement."""
    if url is not None:
        yield url
        return
    import socket

    import ray
    from ray import serve

    from serving.app import APP_NAME, build_app
    from serving.server import ray_env, wait_ready

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    args = settings.model_dump(mode="json")
    args["server"]["port"] = port
    env = {k: v for k, v in ray_env(settings).items() if k.startswith("RAY_SERVE")}
    os.environ.update(env)  # HAProxy switches are read when Ray starts
    with console.status("starting Ray and Serve for the HTTP measurement..."):
        ray.init(logging_level="WARNING", log_to_driver=False, runtime_env={"env_vars": env})
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        serve.run(build_app(args), name=APP_NAME, route_prefix="/", blocking=False)
        base = f"http://127.0.0.1:{port}"
        wait_ready(base)
    try:
        yield base
    finally:
        with console.status("stopping Serve..."):
            serve.shutdown()
            ray.shutdown()


def _print(rows: list[dict[str, Any]], console: Console, title: str) -> None:
    table = Table("measurement", "per second", "p50 ms", "p99 ms", title=title)
    for r in rows:
        table.add_row(r["what"], f"{r['per_s']:,.0f}", f"{r['p50_ms']:.2f}", f"{r['p99_ms']:.2f}")
    console.print(table)


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
        proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                 "--appendonly", "no", "--dir", tmp], stdout=subprocess.DEVNULL)
        try:
            time.sleep(0.5)
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            proc.terminate()
            proc.wait(timeout=10)


async def _reengage_load(url: str, ids: list[int], concurrency: int) -> tuple[list[float], int, int]:
    import httpx

    lat: list[float] = []
    tokens = errors = 0
    queue = list(ids)

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal tokens, errors
        while queue:
            cid = queue.pop()
            t = time.perf_counter()
            r = await client.post("/v1/reengage", json={"customer_id": cid, "action": "winback_email"})
            lat.append(time.perf_counter() - t)
            if r.status_code == 200:
                tokens += int(r.json()["llm"].get("completion_tokens") or 0)
            else:
                errors += 1

    async with httpx.AsyncClient(base_url=url, timeout=120) as client:
        await client.post("/v1/reengage", json={"customer_id": 1, "action": "winback_email"})  # warm up
        start = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
        total = time.perf_counter() - start
    lat.append(total)  # the wall time travels as the last item
    return lat, tokens, errors


def run_reengage_bench(url: str, *, requests: int = 48, concurrency: int = 4,
                       console: Console | None = None) -> dict[str, Any]:
    """/v1/reengage over HTTP on a running server: latency and generated tokens/s."""
    console = console or Console()
    out: dict[str, Any] = {}
    for c in sorted({1, concurrency}):
        with console.status(f"/v1/reengage, {requests} customers, {c} concurrent..."):
            lat, tokens, errors = asyncio.run(_reengage_load(url, list(range(2, requests + 2)), c))
        wall = lat.pop()
        out[f"c={c}"] = {"requests": len(lat), "errors": errors, "p50_ms": 1e3 * statistics.median(lat),
                         "p99_ms": 1e3 * float(np.percentile(lat, 99)), "tokens_per_s": tokens / wall,
                         "emails_per_s": len(lat) / wall}
    table = Table("concurrency", "emails/s", "tokens/s", "p50 ms", "p99 ms", "errors", title="POST /v1/reengage (HTTP)")
    for k, v in out.items():
        table.add_row(k, f"{v['emails_per_s']:.1f}", f"{v['tokens_per_s']:.0f}", f"{v['p50_ms']:.0f}",
                      f"{v['p99_ms']:.0f}", str(v["errors"]))
    console.print(table)
    return out
