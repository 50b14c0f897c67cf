"""Loaded model versions per model; the newest loaded version is the default.

The repository (``repository.py``) says what exists on disk; the registry holds what is
loaded. ``load`` brings new versions up before dropping old ones, so a model being
reloaded never has a moment without a servable version.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Callable

from serving.errors import ModelNotFound, ModelNotReady
from serving.repository import ModelSpec, VersionSpec, check_version, read_model, scan
from serving.runtime.base import ModelRuntime
from serving.runtime import runtime_for

RuntimeFactory = Callable[[ModelSpec, VersionSpec], ModelRuntime]
RETIRE_GRACE_S = 30.0  # a dropped version stays usable this long for requests already holding it


class ModelRegistry:
    def __init__(self, repo_path: Path, runtime_factory: RuntimeFactory | None = None) -> None:
        self.repo_path = repo_path
        self._factory = runtime_factory or (lambda spec, ver: runtime_for(spec, ver, 1))
        self._specs: dict[str, ModelSpec] = {}
        self._loaded: dict[str, dict[str, ModelRuntime]] = {}
        self._failed: dict[str, dict[str, str]] = {}  # version -> why it could not load
        self._retired: list[tuple[float, ModelRuntime]] = []
        self._lock = threading.Lock()

    def load(self, name: str, exclude: Iterable[str] = (), extra: Iterable[str] = ()) -> ModelSpec:
        """(Re)load ``name`` from disk: its version policy's versions plus ``extra`` (a
        rollout's), minus ``exclude``. A version that fails to load is skipped and its cause
        kept (``failures``); the versions already loaded keep serving."""
        spec = read_model(self.repo_path, name)
        current = self._loaded.get(name, {})
        skip = set(exclude)
        wanted = [
            v
            for v in dict.fromkeys(
                [*spec.policy_versions, *(e for e in extra if e in spec.versions)]
            )
            if v not in skip
        ]
        fresh: dict[str, ModelRuntime] = {}
        failed: dict[str, str] = {}
        for version in sorted(wanted, key=int):
            runtime = current.get(version)
            if runtime is None or not runtime.ready:
                try:
                    runtime = self._factory(spec, spec.versions[version])
                    runtime.load()
                except Exception as exc:  # a corrupt or unreadable version: refused, not fatal
                    failed[version] = f"{type(exc).__name__}: {exc}"[:500]
                    continue
            fresh[version] = runtime
        if wanted and not fresh:
            raise ModelNotReady(f"model '{name}': no version could load: {failed}")
        with self._lock:  # swap atomically: readers see the old set or the new one
            self._specs[name] = spec
            self._loaded[name] = fresh
            self._failed[name] = failed
        self._retire(r for v, r in current.items() if fresh.get(v) is not r)
        return spec

    def _retire(self, runtimes: Iterable[ModelRuntime]) -> None:
        """Unload dropped runtimes only after a grace period: a request that already took
        one (queued in a batch) finishes on it."""
        now = time.monotonic()
        self._retired.extend((now + RETIRE_GRACE_S, r) for r in runtimes)
        due = [r for t, r in self._retired if t <= now]
        self._retired = [(t, r) for t, r in self._retired if t > now]
        for runtime in due:
            runtime.unload()

    def reject(self, name: str, version: str, cause: str) -> bool:
        """Take a loaded version out of service (it cannot serve: ``cause``), unless it is the
        model's last one; False when nothing was taken out."""
        with self._lock:
            loaded = dict(self._loaded.get(name, {}))
            runtime = loaded.pop(version, None)
            if runtime is None or not loaded:
                return False
            self._loaded[name] = loaded
            self._failed.setdefault(name, {})[version] = cause
        self._retire([runtime])
        return True

    def failures(self, name: str) -> dict[str, str]:
        return dict(self._failed.get(name, {}))

    def loaded_versions(self, name: str) -> list[str]:
        return sorted(self._loaded.get(name, {}), key=int)

    def unload(self, name: str) -> None:
        if name not in self._loaded and name not in scan(self.repo_path):
            raise ModelNotFound(f"model '{name}' is not in the repository", field="model_name")
        with self._lock:
            runtimes = self._loaded.pop(name, {})
        self._retire(runtimes.values())

    def spec(self, name: str) -> ModelSpec:
        spec = self._specs.get(name)
        if spec is None:
            raise ModelNotFound(f"model '{name}' is not loaded", field="model_name")
        return spec

    def get(self, name: str, version: str | None = None) -> ModelRuntime:
        loaded = self._loaded.get(name)
        if loaded is None:
            if (
                name in self._specs
            ):  # known, but unloaded: a server-side state, not the caller's mistake
                raise ModelNotReady(
                    f"model '{name}' is unloaded (POST /v2/repository/models/{name}/load "
                    "brings it back)",
                    field="model_name",
                )
            raise ModelNotFound(f"model '{name}' is not loaded", field="model_name")
        spec = self._specs[name]
        resolved = (
            check_version(spec, version) if version else (max(loaded, key=int) if loaded else None)
        )
        runtime = loaded.get(resolved) if resolved else None
        if runtime is None and version is None:
            raise ModelNotReady(f"model '{name}' has no version loaded", field="model_name")
        if runtime is None:
            raise ModelNotFound(
                f"model '{name}' version '{version}' is not loaded "
                f"(version_policy serves {sorted(loaded, key=int)})",
                field="model_version",
            )
        return runtime

    def is_ready(self, name: str, version: str | None = None) -> bool:
        try:
            return self.get(name, version).ready
        except (ModelNotFound, ModelNotReady):
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
                failed = self._failed.get(name, {}).get(version)
                reason = failed or (
                    "unloaded" if name not in self._loaded else "not loaded (version_policy)"
                )
                rows.append(
                    {
                        "name": name,
                        "version": version,
                        "state": "READY" if ready else "UNAVAILABLE",
                        "reason": "" if ready else reason,
                    }
                )
        return rows
