"""Write models into the Triton-layout repository: config.pbtxt and numbered versions.

A version directory is immutable: it is written under a temporary name and renamed into
place, and a new one is added only when the fingerprint (training data, labels, feature
list, code, hyperparameters) differs from the newest version's. Readers that scan the
repository (ours, Triton) therefore never see a half-written version.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc

INPUT_NAME = "features"
OUTPUT_NAME = "probability"
MAX_BATCH_SIZE = 10_000
MAX_QUEUE_DELAY_US = (
    0  # batch what is queued (arrivals during a run join the next one): no added latency
)


def combined_fingerprint(data_fp: str, code_fp: str, params: dict[str, Any]) -> str:
    blob = json.dumps(
        {"data": data_fp, "code": code_fp, "params": params}, sort_keys=True, default=str
    )
    return hashlib.sha256(blob.encode()).hexdigest()


def versions(model_dir: Path) -> list[int]:
    """Version numbers present (integer directory names), ascending."""
    if not model_dir.is_dir():
        return []
    return sorted(int(p.name) for p in model_dir.iterdir() if p.is_dir() and p.name.isdigit())


def read_metrics(model_dir: Path, version: int) -> dict[str, Any]:
    return json.loads((model_dir / str(version) / "metrics.json").read_text())


def find_version(model_dir: Path, fingerprint: str) -> int | None:
    """The newest version if it was built from exactly these inputs, else None."""
    found = versions(model_dir)
    if not found:
        return None
    try:
        newest = read_metrics(model_dir, found[-1])
    except (OSError, ValueError):
        return None
    return found[-1] if newest.get("fingerprint") == fingerprint else None


def config_proto(
    name: str, n_features: int, feature_service: str, runtime: str | None = None
) -> mc.ModelConfig:
    """The Triton ModelConfig every reengage ONNX model shares; ``runtime`` names a compiled
    runtime."""
    cfg = mc.ModelConfig(name=name, platform="onnxruntime_onnx", max_batch_size=MAX_BATCH_SIZE)
    cfg.input.add(name=INPUT_NAME, data_type=mc.TYPE_FP32, dims=[n_features])
    cfg.output.add(name=OUTPUT_NAME, data_type=mc.TYPE_FP32, dims=[1])
    cfg.dynamic_batching.max_queue_delay_microseconds = MAX_QUEUE_DELAY_US
    cfg.version_policy.all.SetInParent()  # every version servable: v2 routes take /versions/{v}
    cfg.instance_group.add(kind=mc.ModelInstanceGroup.KIND_CPU, count=1)
    cfg.parameters["feature_service"].string_value = feature_service
    if (
        runtime is not None
    ):  # Triton's ONNX Runtime backend ignores it; serving.runtime.runtime_for reads it
        cfg.parameters["runtime"].string_value = runtime
    return cfg


def write_config(model_dir: Path, cfg: mc.ModelConfig) -> Path:
    model_dir.mkdir(parents=True, exist_ok=True)
    path = model_dir / "config.pbtxt"
    tmp = model_dir / f".config.pbtxt.{uuid.uuid4().hex}"
    tmp.write_text(text_format.MessageToString(cfg))
    tmp.replace(path)
    return path


def read_config(model_dir: Path) -> mc.ModelConfig:
    return text_format.Parse((model_dir / "config.pbtxt").read_text(), mc.ModelConfig())


def set_feature_metadata(
    onnx_model: onnx.ModelProto, features: tuple[str, ...], **extra: str
) -> None:
    """Feature names (comma-joined) and provenance in the model's metadata_props."""
    props = {"feature_names": ",".join(features), **extra}
    del onnx_model.metadata_props[:]
    for key, value in props.items():
        onnx_model.metadata_props.add(key=key, value=str(value))


def check_model(model: onnx.ModelProto, n_features: int) -> None:
    """The contract: one input ``features`` [-1, F] FP32, one output ``probability`` [-1, 1]."""
    onnx.checker.check_model(model)
    g = model.graph
    init = {i.name for i in g.initializer}
    inputs = [i for i in g.input if i.name not in init]
    ok = (
        len(inputs) == 1
        and inputs[0].name == INPUT_NAME
        and len(g.output) == 1
        and g.output[0].name == OUTPUT_NAME
    )
    if not ok:
        raise ValueError("ONNX graph must have one input 'features' and one output 'probability'")
    for vi, width in ((inputs[0], n_features), (g.output[0], 1)):
        t = vi.type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") else -1 for d in t.shape.dim]
        if t.elem_type != onnx.TensorProto.FLOAT or dims != [-1, width]:
            raise ValueError(f"{vi.name}: expected FP32 [-1, {width}], got {dims}")


def onnx_predict(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    return sess.run([OUTPUT_NAME], {INPUT_NAME: np.ascontiguousarray(x, dtype=np.float32)})[0]


def write_version(
    model_dir: Path,
    model: onnx.ModelProto,
    metrics: dict[str, Any],
    cfg: mc.ModelConfig,
    files: dict[str, bytes] | None = None,
) -> int:
    """Add the next version atomically (temp dir, then rename); never overwrite one.

    ``files`` are extra files of the version (the booster text, a compiled artifact),
    written into the same temp dir so they appear with ``model.onnx`` or not at all.
    """
    model_dir.mkdir(parents=True, exist_ok=True)
    tmp = model_dir / f".tmp-{uuid.uuid4().hex}"
    tmp.mkdir()
    try:
        onnx.save_model(model, str(tmp / "model.onnx"))
        for name, blob in (files or {}).items():
            (tmp / name).write_bytes(blob)
        for _ in range(100):
            version = (versions(model_dir) or [0])[-1] + 1
            body = {**metrics, "version": version}
            (tmp / "metrics.json").write_text(json.dumps(body, indent=1, sort_keys=True))
            try:
                os.rename(tmp, model_dir / str(version))  # fails if a racing build took the number
            except OSError:
                continue
            write_config(model_dir, cfg)
            return version
        raise RuntimeError(f"could not claim a version number under {model_dir}")
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
