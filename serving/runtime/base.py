"""The one small interface every model backend implements: load / predict / unload.

Runtimes take and return dicts of numpy arrays; decoding wire formats is the codecs'
job, batching is the deployment's.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from serving.repository import ModelSpec, TensorSpec, VersionSpec


class ModelRuntime(ABC):
    def __init__(self, spec: ModelSpec, version: VersionSpec) -> None:
        self.spec = spec
        self.version = version
        self.ready = False

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def features(self) -> tuple[str, ...]:
        """Feature names in the column order of the model's input (from training)."""
        return self.version.features

    @abstractmethod
    def load(self) -> None: ...

    @abstractmethod
    def predict(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]: ...

    def unload(self) -> None:
        self.ready = False

    @property
    def inputs(self) -> tuple[TensorSpec, ...]:
        return self.spec.inputs

    @property
    def outputs(self) -> tuple[TensorSpec, ...]:
        return self.spec.outputs
