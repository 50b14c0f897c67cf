"""Model runtimes behind one interface (``base.ModelRuntime``)."""

from __future__ import annotations

from serving.repository import ModelSpec, VersionSpec
from serving.runtime.base import ModelRuntime


def runtime_for(spec: ModelSpec, version: VersionSpec, threads: int) -> ModelRuntime:
    """The runtime a model's config.pbtxt asks for (ONNX Runtime by default)."""
    from serving.runtime.onnx import OnnxRuntime

    return OnnxRuntime(spec, version, intra_op_threads=threads)
