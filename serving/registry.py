"""Loaded model versions per model; the newest loaded version is the default.

The repository (``repository.py``) says what exists on disk; the registry holds what is
loaded. ``load`` brings new versions up before dropping old ones, so a model being
reloaded never has a moment without a servable version.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Callable

from serving.errors import ModelNotFound
from serving.repository import ModelSpec, VersionSpec, check_version, read_model, scan
from serving.runtime.base import ModelRuntime
from serving.runtime import runtime_for

RuntimeFactory = Callable[[ModelSpec, VersionSpec], ModelRuntime]


class ModelRegistry:
    def __init__(self, repo_path: Path, runtime_factory: RuntimeFactory | None = None) -> None:
        self.repo_path = repo_path
        self._factory = runtime_factory or (lambda spec, ver: runtime_for(spec, ver, 1))
        self._specs: dict[str, ModelSpec] = {}
        self._loaded: dict[str, dict[str, ModelRuntime]] = {}
        self._lock = threading.Lock()

    def load(self, name: str) -> ModelSpec:
        """(Re)load ``name`` from disk per its version policy; returns the new spec."""
        spec = read_model(self.repo_path, name)
        current = self._loaded.get(name, {})
        fresh: dict[str, ModelRuntime] = {}
        for version in spec.policy_versions:
            runtime = current.get(version)
            if runtime is None or not runtime.ready:
                runtime = self._factory(spec, spec.versions[version])
                runtime.load()
            fresh[version] = runtime
        with self._lock:  # swap atomically: readers see the old set or the new one
            self._specs[name] = spec
            self._loaded[name] = fresh
        for version, runtime in current.items():
            if version not in fresh:
                runtime.unload()
        return spec

    def unload(self, name: str) -> None:
        if name not in self._loaded and name not in scan(self.repo_path):
            raise ModelNotFound(f"model '{name}' is not in the repository", field="model_name")
        with self._lock:
            runtimes = self._loaded.pop(name, {})
        for runtime in runtimes.values():
            runtime.unload()

    def spec(self, name: str) -> ModelSpec:
        spec = self._specs.get(name)
        if spec is None:
            raise ModelNotFound(f"model '{name}' is not loaded", field="model_name")
        return spec

    def get(self, name: str, version: str | None = None) -> ModelRuntime:
        loaded = self._loaded.get(name)
        if loaded is None:
            raise ModelNotFound(f"model '{name}' is not loaded", field="model_name")
        spec = self._specs[name]
        resolved = check_version(spec, version) if version else (max(loaded, key=int) if loaded else None)
        runtime = loaded.get(resolved) if resolved else None
        if runtime is None:
            raise ModelNotFound(
                f"model '{name}' version '{version}' is not loaded (version_policy serves {sorted(loaded, key=int)})",
                field="model_version",
            )
        return runtime

    def is_ready(self, name: str, version: str | None = None) -> bool:
        try:
            return self.get(name, version).ready
        except ModelNotFound:
            return False

    def names(self) -> list[str]:
        return sorted(self._loaded)

    def index(self) -> list[dict[str, str]]:
        """Repository index (v2 repository extension): every version on disk and its state."""
        rows = []
        for name, spec in scan(self.repo_path).items():
            loaded = self._loaded.get(name, {})
            for version in spec.versions:
                ready = version in loaded and loaded[version].ready
                rows.append({
                    "name": name, "version": version,
                    "state": "READY" if ready else "UNAVAILABLE",
                    "reason": "" if ready else ("unloaded" if name not in loaded else "not in version_policy"),
                })
        return rows
