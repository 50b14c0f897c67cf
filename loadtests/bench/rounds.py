"""The measured points of `reengage bench score`: raw ONNX Runtime on the requests' rows,
then each HTTP target under wrk, in rounds.

Why apart from the run: this is what a point *is* (its warm-up, its window, the longer
window when one held too few requests, the rotation of targets between rounds), kept
apart from starting the targets and from reporting, so it reads and tests on its own.
Each round starts with the next target, so a drift of the machine over minutes falls on
all targets alike and each round's ratios pair windows seconds apart.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rich.progress import Progress, TaskID

from loadtests.bench.applog import AppLatency
from loadtests.bench.refs import ort_point, packed_reader
from loadtests.bench.report import LABELS
from loadtests.bench.targets import PATHS
from loadtests.bench.wrk import lua_script, run_wrk
from serving.settings import Settings

Scripts = dict[tuple[int, str], Path]


@dataclass(frozen=True)
class Load:
    """How every HTTP point is loaded: wrk's script per (ids, path), and its windows."""

    scripts: Scripts
    seconds: float
    warmup: float
    rounds: int
    wrk_threads: int


def write_scripts(workdir: Path, bodies: dict[int, list[str]]) -> Scripts:
    """Each ids size's bodies file (one body a line), and a wrk script per path reading it."""
    scripts: Scripts = {}
    for n, group in bodies.items():
        (workdir / f"bodies-{n}.txt").write_text("\n".join(group) + "\n")
        for path in set(PATHS.values()):
            scripts[n, path] = workdir / f"wrk-{n}-{path.strip('/').replace('/', '_')}.lua"
            scripts[n, path].write_text(lua_script(workdir / f"bodies-{n}.txt", path))
    return scripts


def ort_points(
    settings: Settings,
    models: list[dict[str, Any]],
    bodies: dict[int, list[str]],
    ids: list[int],
    seconds: float,
    progress: Progress,
    task: TaskID,
) -> list[dict[str, Any]]:
    """Both models on the rows of the first bodies of each ids size, 2 threads then 1."""
    reader = packed_reader(
        settings.features, list(dict.fromkeys(m["feature_service"] for m in models))
    )
    points: list[dict[str, Any]] = []
    for n in ids:
        batches = [
            reader.read(np.asarray(json.loads(b)["customer_ids"], np.int64)) for b in bodies[n][:8]
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
    return points


def http_rounds(
    load: Load,
    urls: dict[str, str],
    http: list[str],
    ids: list[int],
    concurrency: list[int],
    app: AppLatency | None,
    progress: Progress,
    task: TaskID,
) -> list[dict[str, Any]]:
    """Every (ids, concurrency), ``load.rounds`` times, the ``http`` targets in turn."""
    points: list[dict[str, Any]] = []
    for n, c in itertools.product(ids, concurrency):
        for r in range(load.rounds):  # each round in another order: none always runs first
            for target in http[r % len(http) :] + http[: r % len(http)]:
                progress.update(
                    task,
                    description=f"{LABELS[target]}: {n:,} ids, c={c}"
                    + (f", round {r + 1}/{load.rounds}" if load.rounds > 1 else ""),
                )
                ours = app if target == "ours" else None
                points.append(http_point(load, target, urls[target], n, c, r, ours))
                progress.advance(task)
    return points


def http_point(
    load: Load, target: str, url: str, n: int, c: int, r: int, app: AppLatency | None
) -> dict[str, Any]:
    """One point: a warm-up not recorded, then the window (4x longer if it held one wave of
    requests at most), with our replicas' own latency for the same window when ``app``."""
    path = PATHS[target]
    script = load.scripts[n, path]

    def window(secs: float) -> dict[str, Any]:
        mark = app.mark() if app else {}
        wrk = run_wrk(url + path, script, concurrency=c, seconds=secs, threads=load.wrk_threads)
        return {**wrk, **(app.summary(mark) if app else {})}

    if load.warmup > 0:
        run_wrk(url + path, script, concurrency=c, seconds=load.warmup, threads=load.wrk_threads)
    got = window(load.seconds)
    if got["requests"] < 2 * c:
        got = {**window(4 * load.seconds), "extended": True}
    return {
        "target": target,
        "ids": n,
        "concurrency": c,
        "round": r,
        **got,
        "pred_s": got["req_s"] * n,
    }
