"""Train one model from the offline store and add a version, or reuse the newest one.

The fingerprint is computed before fitting, so an unchanged build costs one historical
retrieval, not a training run.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pandas as pd
from feast import FeatureStore

from model_repo.training import card, churn, common, engagement, explain, export, reference

ONNX_TOLERANCE = 1e-4  # the build refuses a model whose ONNX output drifts more than this
COMPILED_TOLERANCE = (
    1e-6  # ... and compiled trees whose output differs from ONNX Runtime's more than this
)

log = logging.getLogger("reengage")


@dataclass(frozen=True)
class TrainResult:
    model: str
    version: int
    reused: bool
    metrics: dict[str, Any]
    seconds: float
    fitted: Any = field(
        default=None, repr=False, compare=False
    )  # the trained model; None when reused


def _code_fingerprint(spec: ModuleType) -> str:
    here = Path(__file__).parent
    files = {
        Path(str(spec.__file__)),
        here / "common.py",
        here / "export.py",
        here / "train.py",
        here / "explain.py",
    }
    compiler = importlib.util.find_spec("serving.runtime.lleaves")
    if getattr(spec, "RUNTIME", None) == "lleaves" and compiler and compiler.origin:
        files.add(Path(compiler.origin))  # its compiler writes the version's artifact
    return common.code_fingerprint(*files)


def train_model(
    spec: ModuleType,
    store: FeatureStore,
    labels: pd.DataFrame,
    repo_path: Path,
    name: str | None = None,
    params: dict[str, Any] | None = None,
    threads: int = 1,
    progress: Any | None = None,
) -> TrainResult:
    """Fit ``spec`` (the churn or engagement module) unless the newest version matches."""
    t0 = time.perf_counter()
    name = name or spec.NAME
    params = {**spec.PARAMS, **(params or {})}
    model_dir = repo_path / name
    task = progress.add_task(f"train {name}: features", total=4) if progress is not None else None
    step = _stepper(progress, task, name)
    data = common.load_training_data(store, spec.FEATURE_SERVICE, labels, spec.LABEL, spec.P_COLUMN)
    data_fp, code_fp = data.fingerprint(), _code_fingerprint(spec)
    fingerprint = export.combined_fingerprint(data_fp, code_fp, params)
    step("fit")
    cfg = export.config_proto(
        name, len(data.features), spec.FEATURE_SERVICE, getattr(spec, "RUNTIME", None)
    )
    found = export.find_version(model_dir, fingerprint)
    if found is not None:
        if not (model_dir / "config.pbtxt").is_file():
            export.write_config(model_dir, cfg)
        metrics = export.read_metrics(model_dir, found)
        write_documents(model_dir / str(found), metrics, data, None)  # only those a version lacks
        step("reused", advance=3)
        return TrainResult(name, found, True, metrics, time.perf_counter() - t0)
    fitted = spec.fit(data, params, threads=threads)
    step("export")
    x_test, y_test, p_true = data.test
    metrics: dict[str, Any] = {**common.evaluate(y_test, fitted.predict(x_test), p_true)}
    onnx_model, drift = _export(fitted, data, name, fingerprint)
    files = fitted.files() if hasattr(fitted, "files") else {}
    compiled, compiled_drift = _compile(
        getattr(spec, "RUNTIME", None), files, onnx_model, x_test, name
    )
    explained = explain.check(
        name, fitted, files, x_test
    )  # completeness on the holdout, or no version
    step("write")
    metrics.update(
        {
            "model": name,
            "features": list(data.features),
            "feature_service": spec.FEATURE_SERVICE,
            "label": spec.LABEL,
            "training_data_fingerprint": data_fp,
            "code_fingerprint": code_fp,
            "fingerprint": fingerprint,
            "params": params,
            "n_train": int((~data.holdout).sum()),
            "n_holdout": int(data.holdout.sum()),
            "onnx_max_abs_diff": drift,
            "trained_at": export.now_iso(),
            **compiled_drift,
            **explained,
        }
    )
    scores = fitted.predict(data.x)
    ref = reference.build(name, fingerprint, data.features, data.x, scores)
    files[reference.FILE] = reference.to_bytes(ref)  # appears with the version, atomically
    version = export.write_version(model_dir, onnx_model, metrics, cfg, files={**files, **compiled})
    write_documents(model_dir / str(version), {**metrics, "version": version}, data, scores)
    step(f"version {version}")
    return TrainResult(
        name, version, False, {**metrics, "version": version}, time.perf_counter() - t0, fitted
    )


def _export(
    fitted: Any, data: common.TrainingData, name: str, fingerprint: str
) -> tuple[Any, float]:
    """The checked ONNX graph with its metadata, and its max deviation from the trained model."""
    onnx_model = fitted.to_onnx(len(data.features))
    export.set_feature_metadata(
        onnx_model,
        data.features,
        model=name,
        feature_service=data.feature_service,
        fingerprint=fingerprint,
    )
    export.check_model(onnx_model, len(data.features))
    drift = onnx_drift(onnx_model, fitted, data.test[0][:5000])
    if drift > ONNX_TOLERANCE:
        raise ValueError(f"{name}: ONNX output differs from the trained model by {drift:.2e}")
    return onnx_model, drift


def _compile(
    runtime: str | None, files: dict[str, bytes], onnx_model: Any, x: np.ndarray, name: str
) -> tuple[dict[str, bytes], dict[str, Any]]:
    """The compiled runtime's files for the version, checked on the holdout against ONNX Runtime.

    Without the package the version is written without them (served by ONNX Runtime);
    a compiled forest that disagrees with the ONNX graph stops the build.
    """
    if runtime != "lleaves":
        return {}, {}
    from serving.runtime import lleaves

    try:
        compiled, forest = lleaves.compile_text(files[lleaves.BOOSTER])
    except lleaves.Unavailable as exc:
        log.warning("%s: not compiled for lleaves (%s); ONNX Runtime will serve it", name, exc)
        return {}, {"compiled_runtime": None}
    got = forest.predict(x)
    want = export.onnx_predict(onnx_model, x)[:, 0].astype(np.float64)
    diff = float(np.max(np.abs(got.astype(np.float32) - want))) if len(x) else 0.0
    if diff > COMPILED_TOLERANCE:
        raise ValueError(
            f"{name}: lleaves output differs from ONNX Runtime by {diff:.2e} on the holdout"
        )
    return compiled, {"compiled_runtime": runtime, "compiled_max_abs_diff": diff}


def write_documents(
    version_dir: Path, metrics: dict[str, Any], data: common.TrainingData, scores: np.ndarray | None
) -> None:
    """The version's drift reference and model card, each only when missing (a version built
    before they existed gets them from its own ``model.onnx``); ``scores``: the version's
    outputs on every training row, when the caller has them."""
    ref_path, card_path = version_dir / reference.FILE, version_dir / card.FILE
    if ref_path.is_file() and card_path.is_file():
        return
    if scores is None:
        import onnx

        scores = export.onnx_predict(onnx.load(str(version_dir / "model.onnx")), data.x)[
            :, 0
        ].astype(np.float64)
    if not ref_path.is_file():
        _atomic_write(
            ref_path,
            reference.to_bytes(
                reference.build(
                    metrics["model"], metrics["fingerprint"], data.features, data.x, scores
                )
            ),
        )
    ref = json.loads(ref_path.read_text())
    x, y, p_true = data.test
    text = card.render(metrics, int(metrics["version"]), ref, x, y, scores[data.holdout], p_true)
    _atomic_write(card_path, text.encode())


def _atomic_write(path: Path, blob: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(blob)
    tmp.replace(path)


def onnx_drift(model: Any, fitted: Any, x: np.ndarray) -> float:
    """Max |ONNX Runtime - training library| probability on ``x``."""
    got = export.onnx_predict(model, x)[:, 0]
    return float(np.max(np.abs(got.astype(np.float64) - fitted.predict(x)))) if len(x) else 0.0


def _stepper(progress: Any | None, task: Any, name: str) -> Any:
    def step(label: str, advance: int = 1) -> None:
        if progress is not None:
            progress.update(task, advance=advance, description=f"train {name}: {label}")

    return step


def train_churn(
    store: FeatureStore, labels: pd.DataFrame, repo_path: Path, **kw: Any
) -> TrainResult:
    return train_model(churn, store, labels, repo_path, **kw)


def train_engagement(
    store: FeatureStore, labels: pd.DataFrame, repo_path: Path, **kw: Any
) -> TrainResult:
    return train_model(engagement, store, labels, repo_path, **kw)
