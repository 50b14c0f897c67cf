"""The two reference apps `reengage bench score` measures beside /v1/score.

``hello_app``: the framework limit. A Ray Serve deployment with a FastAPI ingress shaped
like ours (``@serve.ingress``, POST, small JSON answer), deployed as a second
application beside ours, on the same Serve instance and the same ingress (so at
``/hello/v1/score``). It reads the
request body (the same bytes /v1/score gets) and does no other work.

``plain_app``: what a user would write instead of adopting reengage. FastAPI on uvicorn
(one worker, no Ray) doing the same work per request: the packed feature read, both
ONNX models, orjson of the columnar answer. No bandit, no decision log, no metrics.
Run as ``uvicorn --factory loadtests.bench.refs:plain_app`` with its configuration (model
files and feature refs, prepared by the bench) in the ``REENGAGE_BENCH_PLAIN`` variable;
``plain_server`` does that on a free port and stops it (by its pid) afterwards.

``ort_point``: the compute limit, raw ONNX Runtime running both models on the rows the
requests' ids read, back to back in this process.
"""

# No ``from __future__ import annotations`` here: FastAPI resolves string annotations
# through the function's globals, and the hello deployment's class is shipped to its
# replicas by value (cloudpickle), without the module globals its annotations would name.
import contextlib
import itertools
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import FastAPI, Request, Response
from pydantic import BaseModel, Field

from serving.settings import Settings, project_root

PLAIN_ENV = "REENGAGE_BENCH_PLAIN"


class ScoreRequest(BaseModel):
    """The plain app's request body (module level: FastAPI resolves the annotation here)."""

    customer_ids: list[int] = Field(min_length=1, max_length=10_000)


def hello_app(*, replicas: int, num_cpus: float, max_ongoing_requests: int) -> Any:
    """A bound Serve application: POST /v1/score -> {"hello": "world", "bytes": n}."""
    from ray import serve

    api = FastAPI()

    @serve.deployment(
        name="Hello",
        num_replicas=replicas,
        max_ongoing_requests=max_ongoing_requests,
        ray_actor_options={"num_cpus": num_cpus},
    )
    @serve.ingress(api)
    class Hello:
        @api.post("/v1/score")
        async def hello(self, request: Request) -> dict[str, Any]:
            body = await request.body()
            return {"hello": "world", "bytes": len(body)}

    return Hello.bind()


def packed_reader(features: Any, services: list[str]) -> Any:
    """A PackedReader of the union of ``services``' features (``features``: FeatureSettings)."""
    from feature_store.reader import PackedReader
    from feature_store.repo import load_store

    store = load_store(features)
    refs: dict[str, None] = {}
    for name in services:
        for projection in store.get_feature_service(name).feature_view_projections:
            refs.update((f"{projection.name_to_use()}:{f.name}", None) for f in projection.features)
    return PackedReader.from_store(
        store, list(refs), on_missing_view=features.on_missing_view, timeout_s=features.timeout_s
    )


def plain_config(
    *, settings: dict[str, Any], models: list[dict[str, Any]], ort_threads: int = 0
) -> str:
    """The JSON ``plain_app`` reads from ``REENGAGE_BENCH_PLAIN``.

    ``models``: ``{"name", "field", "version", "path", "features", "feature_service"}`` each
    (``field``: the answer's column, e.g. ``churn_probability``); ``ort_threads`` 0 is
    ONNX Runtime's default (one per core), what ``InferenceSession(path)`` gives a user.
    """
    return json.dumps({"settings": settings, "models": models, "ort_threads": ort_threads})


def plain_app() -> Any:
    """The plain FastAPI app (uvicorn factory)."""
    import onnxruntime as ort
    import orjson

    from serving.settings import load_settings

    cfg = json.loads(os.environ[PLAIN_ENV])
    reader = packed_reader(
        load_settings(cfg["settings"]).features,
        list(dict.fromkeys(m["feature_service"] for m in cfg["models"])),
    )
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = int(cfg["ort_threads"])
    position = {name: i for i, name in enumerate(reader.names)}
    models = []
    for m in cfg["models"]:
        session = ort.InferenceSession(m["path"], opts, providers=["CPUExecutionProvider"])
        models.append(
            (
                m["field"],
                session,
                session.get_inputs()[0].name,
                np.array([position[f] for f in m["features"]], dtype=np.intp),
            )
        )
    versions = {m["name"]: m["version"] for m in cfg["models"]}

    app = FastAPI()

    @app.get("/health")
    def health() -> dict[str, bool]:
        return {"ok": True}

    @app.post("/v1/score")
    def score(req: ScoreRequest) -> Response:  # sync: FastAPI runs it in its thread pool
        ids = np.asarray(req.customer_ids, dtype=np.int64)
        batch = reader.read(ids)
        out: dict[str, Any] = {"customer_ids": ids, "found": batch.found}
        for field, session, input_name, columns in models:
            p = session.run(None, {input_name: batch.values[:, columns]})[0].reshape(-1)
            out[field] = (
                p
                if batch.found.all()
                else [float(v) if f else None for v, f in zip(p, batch.found)]
            )
        out["model_versions"] = versions
        return Response(
            orjson.dumps(out, option=orjson.OPT_SERIALIZE_NUMPY), media_type="application/json"
        )

    return app


# -- raw ONNX Runtime: both models on the same rows, no serving at all ----------------------
def timed(fn: Callable[[], Any], seconds: float) -> tuple[float, float, float, int]:
    """(calls/s, p50 ms, p99 ms, calls) of ``fn`` back to back for ``seconds``."""
    fn()
    lat: list[float] = []
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        t = time.perf_counter()
        fn()
        lat.append(time.perf_counter() - t)
    total = time.perf_counter() - start
    return (
        len(lat) / total,
        1e3 * statistics.median(lat),
        1e3 * float(np.percentile(lat, 99)),
        len(lat),
    )


def ort_point(
    models: list[dict[str, Any]], batches: list[Any], threads: int, seconds: float
) -> dict[str, Any]:
    """Both models on one batch a call (``batches`` in turn), ``threads`` intra-op threads."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    runs = []
    for m in models:
        session = ort.InferenceSession(m["path"], opts, providers=["CPUExecutionProvider"])
        runs.append(
            (session, session.get_inputs()[0].name, [b.columns(m["features"]) for b in batches])
        )
    turn = itertools.count()

    def once() -> None:
        k = next(turn) % len(batches)
        for session, name, xs in runs:
            session.run(None, {name: xs[k]})

    per_s, p50, p99, calls = timed(once, seconds)
    return {
        "req_s": per_s,
        "pred_s": per_s * len(batches[0]),
        "p50_ms": p50,
        "p99_ms": p99,
        "requests": calls,
        "errors": 0,
        "wrk_cpu": None,
    }


def score_models(settings: Settings) -> list[dict[str, Any]]:
    """The newest version of churn and engagement: file, features, answer column."""
    from serving.repository import read_model

    out = []
    for field, name in (
        ("churn_probability", settings.models.churn),
        ("engagement_probability", settings.models.engagement),
    ):
        spec = read_model(settings.models.repo_path, name)
        version = spec.versions[spec.newest]
        out.append(
            {
                "name": name,
                "field": field,
                "version": spec.newest,
                "path": str(version.model_file),
                "features": list(version.features),
                "feature_service": spec.feature_service or f"{name}_model",
            }
        )
    return out


# -- processes: the plain app and the bench's own Ray head are started and stopped by id --
def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for s in socks:
            s.close()


def wait_up(
    check: Callable[[], Any], proc: subprocess.Popen[bytes], what: str, log: Path, timeout_s: float
) -> None:
    """Until ``check()`` returns True (anything else, or an exception, is the last state seen)."""
    deadline = time.monotonic() + timeout_s
    last: Any = "no answer"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(
                f"{what} exited with {proc.returncode}; its log: {log}\n{log.read_text()[-2000:]}"
            )
        try:
            last = check()
        except Exception as exc:  # not up yet
            last = repr(exc)
        if last is True:
            return
        time.sleep(0.5)
    raise TimeoutError(
        f"{what} not up within {timeout_s:.0f} s (last: {str(last)[:500]}); log: {log}"
    )


def stop_group(proc: subprocess.Popen[bytes], timeout_s: float = 60.0) -> None:
    """SIGTERM to the process we started, then whatever is left of its process group."""
    proc.terminate()
    try:
        proc.wait(timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        time.sleep(2.0)


@contextlib.contextmanager
def plain_server(config: str, workdir: Path) -> Iterator[str]:
    """The plain FastAPI reference on uvicorn (1 worker) on a free port."""
    import httpx

    port = free_ports(1)[0]
    log = workdir / "uvicorn.log"
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "--factory",
                "loadtests.bench.refs:plain_app",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--workers",
                "1",
                "--no-access-log",
                "--log-level",
                "warning",
            ],
            env={**os.environ, PLAIN_ENV: config},
            cwd=project_root(),
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_up(lambda: http_ok(httpx.get(f"{url}/health", timeout=2)), proc, "uvicorn", log, 180)
        yield url
    finally:
        stop_group(proc, 15)


def http_ok(response: Any) -> Any:
    """True for a 200, else what came back (for the error message)."""
    return (
        True
        if response.status_code == 200
        else f"HTTP {response.status_code} {response.text[:300]}"
    )
