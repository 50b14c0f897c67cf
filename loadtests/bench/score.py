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

import contextlib
import datetime
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from loadtests.bench.applog import AppLatency, serve_logs_dir
from loadtests.bench.refs import score_models
from loadtests.bench.report import aggregate, plot_or_say, print_tables, ratios
from loadtests.bench.rounds import Load, http_rounds, ort_points, write_scripts
from loadtests.bench.targets import start_http
from loadtests.bench.wrk import bodies_per_point, request_bodies
from serving.settings import Settings

TARGETS = ("ours", "hello", "plain", "ort")
HTTP_TARGETS = ("ours", "hello", "plain")
WRK_MISSING = (
    "wrk is not installed: the bench needs it as its load generator (apt-get install wrk)."
)


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
    console = console or Console()
    targets = list(targets or TARGETS)
    _validate(settings, ids, concurrency, targets, rounds)
    workdir = Path(tempfile.mkdtemp(prefix="reengage-bench-"))
    settings = _throwaway_state(settings, workdir)
    models = score_models(settings)
    bodies = {
        n: request_bodies(settings.data.customers, n, bodies_per_point(n), seed=n) for n in ids
    }
    load = Load(write_scripts(workdir, bodies), seconds, warmup, rounds, wrk_threads)
    http = [t for t in HTTP_TARGETS if t in targets]
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
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, TimeElapsedColumn(), console=console) as progress:
        task = progress.add_task("", total=total)

        def say(text: str) -> None:
            progress.update(task, description=text)

        points: list[dict[str, Any]] = []
        if "ort" in targets:
            points += ort_points(settings, models, bodies, ids, seconds, progress, task)
        with contextlib.ExitStack() as servers:
            urls = start_http(
                servers,
                settings,
                models,
                plain_ort_threads,
                workdir,
                targets,
                bodies,
                meta,
                console,
                say,
            )
            app = AppLatency(serve_logs_dir()) if "ours" in urls else None
            points += http_rounds(load, urls, http, ids, concurrency, app, progress, task)
            say("stopping the servers (Ray: 10-40 s)...")
        meta["stopped"] = {target: True for target in urls}
        say("done")
    meta["loadavg_end"] = os.getloadavg()
    result = {
        "meta": meta,
        "points": aggregate(points),
        "ratios": ratios(points),
        **({"rounds": points} if rounds > 1 else {}),
    }
    _report(result, out_json, plot, console)
    shutil.rmtree(workdir, ignore_errors=True)
    return result


def _validate(
    settings: Settings, ids: list[int], concurrency: list[int], targets: list[str], rounds: int
) -> None:
    """Refuse, before anything starts, a choice the bench cannot run with."""
    if set(targets) - set(TARGETS):
        raise BenchError(
            f"unknown targets {sorted(set(targets) - set(TARGETS))}; "
            f"choose from {', '.join(TARGETS)}"
        )
    most = min(10_000, settings.data.customers)
    if not ids or not concurrency or not all(1 <= n <= most for n in ids):
        raise BenchError(f"ids per request must be 1..{most:,}; concurrency not empty")
    if rounds < 1:
        raise BenchError("rounds must be at least 1")
    if set(targets) - {"ort"} and shutil.which("wrk") is None:
        raise BenchError(WRK_MISSING)


def _throwaway_state(settings: Settings, workdir: Path) -> Settings:
    """The bench's decisions go to a throwaway bandit state, not the server's learned one."""
    return settings.model_copy(
        update={
            "bandit": settings.bandit.model_copy(update={"state_path": workdir / "bandit"}),
            "llm": settings.llm.model_copy(update={"enabled": False}),
        }
    )


def _report(result: dict[str, Any], out_json: Path | None, plot: bool, console: Console) -> None:
    """The tables; the JSON and, beside it, the PNG when asked."""
    print_tables(result, console)
    if out_json is not None:
        out_json.parent.mkdir(parents=True, exist_ok=True)
        out_json.write_text(json.dumps(result, indent=1) + "\n")
        console.print(f"results: {out_json}")
        if plot:
            plot_or_say(result, out_json.with_suffix(".png"), console)


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
