"""Scans a Triton-layout model repository into specs.

``model_repo/<model>/config.pbtxt`` is parsed with Triton's own ``ModelConfig`` protobuf
(shipped in ``tritonclient``), so a repository that Triton accepts reads the same here.
Versions are the integer-named folders holding the model file; each may carry a
``metrics.json`` (written by training) with its feature list.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

from serving.errors import InvalidRequest, ModelNotFound

PLATFORM_FILES = {"onnxruntime_onnx": "model.onnx"}
# What ``parameters { key: "runtime" }`` may name; ONNX Runtime when absent (serving/runtime).
RUNTIMES = ("onnxruntime", "lleaves")

# Triton config data types -> KServe v2 datatypes.
_TRITON_TO_V2 = {
    "TYPE_BOOL": "BOOL",
    "TYPE_UINT8": "UINT8",
    "TYPE_UINT16": "UINT16",
    "TYPE_UINT32": "UINT32",
    "TYPE_UINT64": "UINT64",
    "TYPE_INT8": "INT8",
    "TYPE_INT16": "INT16",
    "TYPE_INT32": "INT32",
    "TYPE_INT64": "INT64",
    "TYPE_FP16": "FP16",
    "TYPE_FP32": "FP32",
    "TYPE_FP64": "FP64",
    "TYPE_STRING": "BYTES",
    "TYPE_BF16": "BF16",
}


@dataclass(frozen=True)
class TensorSpec:
    """A model input or output as the v2 metadata describes it (shape has -1 for batch)."""

    name: str
    datatype: str
    shape: tuple[int, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "datatype": self.datatype, "shape": list(self.shape)}


@dataclass(frozen=True)
class VersionSpec:
    version: str
    path: Path
    model_file: Path
    metrics: dict[str, Any] = field(default_factory=dict)

    @property
    def features(self) -> tuple[str, ...]:
        return tuple(self.metrics.get("features", ()))


@dataclass(frozen=True)
class ModelSpec:
    name: str
    platform: str
    max_batch_size: int
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    versions: dict[str, VersionSpec]
    parameters: dict[str, str]
    max_queue_delay_s: float
    policy_versions: tuple[str, ...]  # versions the version_policy says to serve

    @property
    def newest(self) -> str | None:
        return self.policy_versions[-1] if self.policy_versions else None

    @property
    def feature_service(self) -> str | None:
        return self.parameters.get("feature_service")

    @property
    def runtime(self) -> str:
        """The runtime config.pbtxt asks for (``parameters { key: "runtime" }``), default ONNX
        Runtime."""
        return self.parameters.get("runtime") or "onnxruntime"


def parse_config(path: Path) -> model_config_pb2.ModelConfig:
    config = model_config_pb2.ModelConfig()
    text_format.Parse(path.read_text(), config)
    return config


def _tensor(t: Any, batched: bool) -> TensorSpec:
    dtype = model_config_pb2.DataType.Name(t.data_type)
    dims = tuple(int(d) for d in t.dims)
    return TensorSpec(
        t.name,
        _TRITON_TO_V2.get(dtype, dtype.removeprefix("TYPE_")),
        ((-1,) if batched else ()) + dims,
    )


def _versions(model_dir: Path, model_file: str) -> dict[str, VersionSpec]:
    out: dict[str, VersionSpec] = {}
    for child in sorted(
        (p for p in model_dir.iterdir() if p.is_dir() and p.name.isdigit()),
        key=lambda p: int(p.name),
    ):
        file = child / model_file
        if not file.is_file():
            continue  # a version being written (temp dir renamed in atomically) or incomplete
        metrics_file = child / "metrics.json"
        metrics = json.loads(metrics_file.read_text()) if metrics_file.is_file() else {}
        out[child.name] = VersionSpec(child.name, child, file, metrics)
    return out


def _policy(config: model_config_pb2.ModelConfig, versions: list[str]) -> tuple[str, ...]:
    """Triton's version_policy: latest N (Triton's default is latest 1), all, or specific."""
    policy = config.version_policy
    kind = policy.WhichOneof("policy_choice")
    if kind == "all":
        return tuple(versions)
    if kind == "specific":
        wanted = {str(v) for v in policy.specific.versions}
        return tuple(v for v in versions if v in wanted)
    n = policy.latest.num_versions if kind == "latest" and policy.latest.num_versions > 0 else 1
    return tuple(versions[-n:])


def read_model(repo_path: Path, name: str) -> ModelSpec:
    model_dir = repo_path / name
    config_file = model_dir / "config.pbtxt"
    if not config_file.is_file():
        raise ModelNotFound(f"model '{name}' is not in the repository", field="model_name")
    config = parse_config(config_file)
    platform = config.platform or config.backend
    model_file = config.default_model_filename or PLATFORM_FILES.get(platform, "model.onnx")
    versions = _versions(model_dir, model_file)
    batched = config.max_batch_size > 0
    delay_us = (
        config.dynamic_batching.max_queue_delay_microseconds
        if config.HasField("dynamic_batching")
        else 0
    )
    return ModelSpec(
        name=config.name or name,
        platform=platform,
        max_batch_size=int(config.max_batch_size),
        inputs=tuple(_tensor(t, batched) for t in config.input),
        outputs=tuple(_tensor(t, batched) for t in config.output),
        versions=versions,
        parameters={k: v.string_value for k, v in config.parameters.items()},
        max_queue_delay_s=delay_us / 1e6,
        policy_versions=_policy(config, list(versions)),
    )


def scan(repo_path: Path) -> dict[str, ModelSpec]:
    """Every model folder with a config.pbtxt; training code and the LLM folder are skipped."""
    if not repo_path.is_dir():
        return {}
    return {
        d.name: read_model(repo_path, d.name)
        for d in sorted(repo_path.iterdir())
        if (d / "config.pbtxt").is_file()
    }


def check_version(spec: ModelSpec, version: str | None) -> str:
    """The version to serve: the requested one (must exist) or the newest under policy."""
    if version is None or version == "":
        if spec.newest is None:
            raise ModelNotFound(
                f"model '{spec.name}' has no version to serve", field="model_version"
            )
        return spec.newest
    if not version.isdigit():
        raise InvalidRequest(
            f"model version must be an integer, got '{version}'", field="model_version"
        )
    if version not in spec.versions:
        raise ModelNotFound(
            f"model '{spec.name}' has no version '{version}'", field="model_version"
        )
    return version
