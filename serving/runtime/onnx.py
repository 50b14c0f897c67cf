"""ONNX Runtime backend."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort

from serving.errors import ModelNotReady
from serving.runtime.base import ModelRuntime
from serving.repository import ModelSpec, VersionSpec


class OnnxRuntime(ModelRuntime):
    def __init__(self, spec: ModelSpec, version: VersionSpec, intra_op_threads: int = 1) -> None:
        super().__init__(spec, version)
        self.intra_op_threads = intra_op_threads
        self._session: ort.InferenceSession | None = None
        self._outputs: list[str] = []

    def load(self) -> None:
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # One replica per core scales better than threads fighting over shared cores;
        # 0 = ORT default.
        opts.intra_op_num_threads = self.intra_op_threads
        opts.inter_op_num_threads = 1
        providers = [
            p
            for p in ("CUDAExecutionProvider", "CPUExecutionProvider")
            if p in ort.get_available_providers()
        ]
        self._session = ort.InferenceSession(
            str(self.version.model_file), opts, providers=providers
        )
        self._outputs = [o.name for o in self._session.get_outputs()]
        self.ready = True

    def predict(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self._session is None:
            raise ModelNotReady(f"model '{self.name}' version {self.version.version} is not loaded")
        results = self._session.run(self._outputs, inputs)
        return dict(zip(self._outputs, results))

    def unload(self) -> None:
        self._session = None
        super().unload()
