"""Model runtimes behind one interface (``base.ModelRuntime``).

config.pbtxt chooses the runtime per model, as Triton's FIL backend is chosen by its
config, but through a parameter so the repository stays loadable by Triton's ONNX
Runtime backend (ONNX is the interchange format of every version)::

    parameters { key: "runtime" value { string_value: "lleaves" } }

Without it a model runs on ONNX Runtime; so it does, with a log line, whenever the
compiled runtime cannot serve a version (no artifact, package absent, other machine).
"""

from __future__ import annotations

import logging

from serving.repository import RUNTIMES, ModelSpec, VersionSpec
from serving.runtime.base import ModelRuntime

log = logging.getLogger("reengage")


def runtime_for(spec: ModelSpec, version: VersionSpec, threads: int) -> ModelRuntime:
    """The runtime a model's config.pbtxt asks for (ONNX Runtime by default and as fallback)."""
    from serving.runtime.onnx import OnnxRuntime

    if spec.runtime not in RUNTIMES:
        raise ValueError(
            f"model '{spec.name}': config.pbtxt runtime '{spec.runtime}' is not one of {RUNTIMES}"
        )
    if spec.runtime == "lleaves":
        from serving.runtime.lleaves import LleavesRuntime, Unavailable, check_artifact

        try:
            manifest = check_artifact(version.path)
            runtime = LleavesRuntime(spec, version)
            log.info(
                "model %s version %s: runtime lleaves (%s, %s)",
                spec.name,
                version.version,
                manifest["artifact"],
                manifest["target_cpu"],
            )
            return runtime
        except Unavailable as exc:
            log.warning(
                "model %s version %s: runtime lleaves unavailable (%s); "
                "serving it with ONNX Runtime",
                spec.name,
                version.version,
                exc,
            )
    return OnnxRuntime(spec, version, intra_op_threads=threads)
