"""Train one model from the offline store and add a version, or reuse the newest one.

The fingerprint is computed before fitting, so an unchanged build costs one historical
retrieval, not a training run.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pandas as pd
from feast import FeatureStore

from model_repo.training import churn, common, engagement, export

ONNX_TOLERANCE = 1e-4  # the build refuses a model whose ONNX output drifts more than this


@dataclass(frozen=True)
class TrainResult:
    model: str
    version: int
    reused: bool
    metrics: dict[str, Any]
    seconds: float
    fitted: Any = field(default=None, repr=False, compare=False)  # the trained model; None when reused


def _code_fingerprint(spec: ModuleType) -> str:
    here = Path(__file__).parent
    files = {Path(str(spec.__file__)), here / "common.py", here / "export.py", here / "train.py"}
    return common.code_fingerprint(*files)


def train_model(spec: ModuleType, store: FeatureStore, labels: pd.DataFrame, repo_path: Path,
                name: str | None = None, params: dict[str, Any] | None = None,
                threads: int = 1, progress: Any | None = None) -> TrainResult:
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
    cfg = export.config_proto(name, len(data.features), spec.FEATURE_SERVICE)
    found = export.find_version(model_dir, fingerprint)
    if found is not None:
        if not (model_dir / "config.pbtxt").is_file():
            export.write_config(model_dir, cfg)
        step("reused", advance=3)
        return TrainResult(name, found, True, export.read_metrics(model_dir, found), time.perf_counter() - t0)
    fitted = spec.fit(data, params, threads=threads)
    step("export")
    x_test, y_test, p_true = data.test
    metrics: dict[str, Any] = {**common.evaluate(y_test, fitted.predict(x_test), p_true)}
    onnx_model, drift = _export(fitted, data, name, fingerprint)
    step("write")
    metrics.update({
        "model": name, "features": list(data.features), "feature_service": spec.FEATURE_SERVICE,
        "label": spec.LABEL, "training_data_fingerprint": data_fp, "code_fingerprint": code_fp,
        "fingerprint": fingerprint, "params": params, "n_train": int((~data.holdout).sum()),
        "n_holdout": int(data.holdout.sum()), "onnx_max_abs_diff": drift, "trained_at": export.now_iso(),
    })
    version = export.write_version(model_dir, onnx_model, metrics, cfg)
    step(f"version {version}")
    return TrainResult(name, version, False, {**metrics, "version": version}, time.perf_counter() - t0, fitted)


def _export(fitted: Any, data: common.TrainingData, name: str, fingerprint: str) -> tuple[Any, float]:
    """The checked ONNX graph with its metadata, and its max deviation from the trained model."""
    onnx_model = fitted.to_onnx(len(data.features))
    export.set_feature_metadata(onnx_model, data.features, model=name, feature_service=data.feature_service,
                                fingerprint=fingerprint)
    export.check_model(onnx_model, len(data.features))
    drift = onnx_drift(onnx_model, fitted, data.test[0][:5000])
    if drift > ONNX_TOLERANCE:
        raise ValueError(f"{name}: ONNX output differs from the trained model by {drift:.2e}")
    return onnx_model, drift


def onnx_drift(model: Any, fitted: Any, x: np.ndarray) -> float:
    """Max |ONNX Runtime - training library| probability on ``x``."""
    got = export.onnx_predict(model, x)[:, 0]
    return float(np.max(np.abs(got.astype(np.float64) - fitted.predict(x)))) if len(x) else 0.0


def _stepper(progress: Any | None, task: Any, name: str) -> Any:
    def step(label: str, advance: int = 1) -> None:
        if progress is not None:
            progress.update(task, advance=advance, description=f"train {name}: {label}")
    return step


def train_churn(store: FeatureStore, labels: pd.DataFrame, repo_path: Path, **kw: Any) -> TrainResult:
    return train_model(churn, store, labels, repo_path, **kw)


def train_engagement(store: FeatureStore, labels: pd.DataFrame, repo_path: Path, **kw: Any) -> TrainResult:
    return train_model(engagement, store, labels, repo_path, **kw)
