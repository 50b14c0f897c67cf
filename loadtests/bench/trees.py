"""`reengage bench trees`: a tree model on ONNX Runtime beside compiled tree runtimes.

Every runtime scores the same holdout rows (the training split: ``common.holdout_mask``)
through a ``predict`` on one thread, at several batch sizes, interleaved call block by
call block (A, B, C, A, B, C ... in alternating order), so the ratio to ONNX Runtime
comes from the same moments of a noisy machine. It also prints each runtime's largest
difference from ONNX Runtime over the whole holdout.

Runtimes: ONNX Runtime (the version's model.onnx), lleaves (the version's compiled
artifact, else compiled here from its model.txt) and, only when the package is installed,
tl2cgen (C from treelite, compiled here with gcc); tl2cgen is not a dependency.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from serving.repository import ModelSpec, VersionSpec, check_version, read_model
from serving.settings import Settings

SIZES = (1, 100, 1_000, 10_000)
Predict = Callable[[np.ndarray], np.ndarray]


def holdout_rows(settings: Settings, version: VersionSpec) -> np.ndarray:
    """The version's holdout rows from the offline store, as training split them."""
    from feature_store.datagen.files import read_labels
    from feature_store.repo import load_store
    from model_repo.training import churn, common, engagement

    module = {m.FEATURE_SERVICE: m for m in (churn, engagement)}[version.metrics["feature_service"]]
    store = load_store(settings.features)
    data = common.load_training_data(
        store,
        module.FEATURE_SERVICE,
        read_labels(settings.features.repo_path / "data"),
        module.LABEL,
        module.P_COLUMN,
    )
    return np.ascontiguousarray(data.test[0], dtype=np.float32)


def runtimes(
    spec: ModelSpec, version: VersionSpec, workdir: Path
) -> tuple[dict[str, Predict], list[str]]:
    """name -> predict(x) -> P [N] float32, ONNX Runtime first; and notes on what was left out."""
    from serving.runtime.onnx import OnnxRuntime

    inp, out = spec.inputs[0].name, spec.outputs[0].name
    onnx_rt = OnnxRuntime(spec, version, intra_op_threads=1)
    onnx_rt.load()
    found: dict[str, Predict] = {"onnxruntime": lambda x: onnx_rt.predict({inp: x})[out][:, 0]}
    notes: list[str] = []
    for name, (fn, note) in (
        ("lleaves", _lleaves(spec, version)),
        ("tl2cgen", _tl2cgen(version.path, workdir)),
    ):
        if fn is not None:
            found[name] = fn
        if note:
            notes.append(f"{name}: {note}")
    return found, notes


def _lleaves(spec: ModelSpec, version: VersionSpec) -> tuple[Predict | None, str | None]:
    """The version's artifact loaded as a replica loads it; else compiled here from model.txt."""
    from serving.runtime import lleaves

    inp, out = spec.inputs[0].name, spec.outputs[0].name
    try:
        lleaves.check_artifact(version.path)
        rt = lleaves.LleavesRuntime(spec, version)
        rt.load()
        return (lambda x: rt.predict({inp: x})[out][:, 0]), None
    except lleaves.Unavailable as exc:
        reason = str(exc)
    booster = version.path / lleaves.BOOSTER
    try:
        _, forest = (
            lleaves.compile_text(booster.read_bytes()) if booster.is_file() else (None, None)
        )
    except lleaves.Unavailable as exc:
        return None, f"left out ({exc})"
    if forest is None:
        return None, f"left out ({reason})"
    return (
        lambda x: forest.predict(x).astype(np.float32)
    ), f"compiled here from {booster.name} ({reason})"


def _tl2cgen(version_dir: Path, workdir: Path) -> tuple[Predict | None, str | None]:
    """C code from treelite, compiled here with gcc: only to compare, it is not a dependency."""
    try:
        import tl2cgen
        import treelite
    except ImportError:
        return None, "left out (pip install treelite tl2cgen to compare it)"
    booster = version_dir / "model.txt"
    if not booster.is_file():
        return None, f"left out (no {booster.name})"
    lib = workdir / "model_tl2cgen.so"
    tl2cgen.export_lib(
        treelite.frontend.load_lightgbm_model(str(booster)),
        toolchain="gcc",
        libpath=str(lib),
        params={"parallel_comp": 2},
        nthread=2,
    )
    predictor = tl2cgen.Predictor(str(lib), nthread=1)
    return (
        lambda x: (
            predictor.predict(tl2cgen.DMatrix(x, dtype="float32"))
            .reshape(len(x))
            .astype(np.float32)
        )
    ), None


def interleaved(
    fns: dict[str, Predict], batches: list[np.ndarray], calls: int, rounds: int
) -> dict[str, list[float]]:
    """rows/s of each runtime per round; each round runs every runtime's block of calls once."""
    rates: dict[str, list[float]] = {name: [] for name in fns}
    names = list(fns)
    for r in range(rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            fn = fns[name]
            fn(batches[0])
            t0 = time.perf_counter()
            for i in range(calls):
                fn(batches[i % len(batches)])
            rates[name].append(calls * len(batches[0]) / (time.perf_counter() - t0))
    return rates


def measure(
    fns: dict[str, Predict],
    x: np.ndarray,
    sizes: tuple[int, ...],
    rounds: int,
    cell_s: float,
    seed: int = 0,
) -> dict[int, dict[str, tuple[float, float]]]:
    """size -> runtime -> (median rows/s, median of the per-round ratios to the first runtime)."""
    rng = np.random.default_rng(seed)
    base = next(iter(fns))
    out: dict[int, dict[str, tuple[float, float]]] = {}
    for n in sizes:
        batches = [
            np.ascontiguousarray(x[rng.choice(len(x), n, replace=len(x) < n)]) for _ in range(4)
        ]
        t0 = time.perf_counter()
        fns[base](batches[0])
        calls = max(2, min(20_000, int(cell_s / max(time.perf_counter() - t0, 1e-6))))
        rates = interleaved(fns, batches, calls, rounds)
        ref = np.array(rates[base])
        out[n] = {
            k: (float(np.median(v)), float(np.median(np.array(v) / ref))) for k, v in rates.items()
        }
    return out


def run_trees_bench(
    settings: Settings,
    *,
    model: str = "churn",
    version: str | None = None,
    sizes: tuple[int, ...] = SIZES,
    rounds: int = 5,
    cell_s: float = 0.1,
    console: Console | None = None,
) -> dict[str, Any]:
    console = console or Console()
    spec = read_model(settings.models.repo_path, model)
    ver = spec.versions[check_version(spec, version)]
    x = holdout_rows(settings, ver)
    with tempfile.TemporaryDirectory(prefix="bench-trees-") as tmp:
        fns, notes = runtimes(spec, ver, Path(tmp))
        ref = fns["onnxruntime"](x).astype(np.float64)
        diffs = {k: float(np.max(np.abs(f(x).astype(np.float64) - ref))) for k, f in fns.items()}
        results = measure(fns, x, sizes, rounds, cell_s)
    table = Table(
        title=f"{model} v{ver.version}: rows/s on holdout rows, 1 thread "
        f"(x ONNX Runtime, same run, median of {rounds} interleaved rounds)"
    )
    table.add_column("rows/call", justify="right")
    for name in fns:
        table.add_column(name, justify="right")
    for n, row in results.items():
        table.add_row(f"{n:,}", *(f"{row[k][0]:,.0f} ({row[k][1]:.2f}x)" for k in fns))
    table.add_row("max |p - ORT|", *(f"{diffs[k]:.1e}" for k in fns))
    console.print(table)
    console.print(f"holdout: {len(x):,} rows; config.pbtxt runtime: {spec.runtime}")
    for note in notes:
        console.print(note)
    return {
        "model": model,
        "version": ver.version,
        "holdout_rows": len(x),
        "max_abs_diff": diffs,
        "rows_per_s": {n: {k: v[0] for k, v in row.items()} for n, row in results.items()},
        "ratio": {n: {k: v[1] for k, v in row.items()} for n, row in results.items()},
    }
