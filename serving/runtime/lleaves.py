"""lleaves backend: the LightGBM trees compiled to machine code (LLVM, through llvmlite).

The build compiles a version's ``model.txt`` (LightGBM's booster text, saved beside
``model.onnx``) into ``model.lleaves.o`` with a manifest ``model.lleaves.json``; a replica
only loads that object, so no compiler runs while serving. ONNX stays the interchange
format: ``runtime_for`` falls back to ONNX Runtime when the artifact, its manifest or the
package is missing, or when the artifact belongs to another booster or machine.

lleaves generates the IR (its parser and code generator); optimising, emitting and loading
the object are done here, because lleaves 1.3, the newest release, drives llvmlite through
the legacy pass manager that llvmlite 0.45 removed (siboehm/lleaves#95) and so fails
beside vLLM's numba. Both llvmlite APIs are handled, so llvmlite is not pinned.

``reengage bench trees`` compares it with ONNX Runtime on churn's holdout rows
(docs/benchmarks.md, "Tree runtimes").
"""

from __future__ import annotations

import ctypes
import hashlib
import importlib
import json
import platform
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from serving.errors import InvalidRequest, ModelNotReady
from serving.repository import ModelSpec, VersionSpec
from serving.runtime.base import ModelRuntime

NAME = "lleaves"
BOOSTER = "model.txt"
ARTIFACT = "model.lleaves.o"
MANIFEST = "model.lleaves.json"
ENTRY = "forest_root"  # void forest_root(double *rows, double *out, int32 start, int32 end)
BLOCK_TREES = 34  # lleaves' default cache blocking of trees
# Code tuned for the building host gains nothing over the x86-64 baseline on these trees
# and would die of SIGILL on an older serving CPU: compile for the baseline.
_PORTABLE_CPU = {"x86_64": "x86-64", "AMD64": "x86-64"}
_MANIFEST_KEYS = {
    "entry",
    "n_features",
    "booster_sha256",
    "artifact_sha256",
    "triple",
    "target_cpu",
    "target_cpu_features",
}
_ENTRY_TYPE = ctypes.CFUNCTYPE(
    None,
    ctypes.POINTER(ctypes.c_double),
    ctypes.POINTER(ctypes.c_double),
    ctypes.c_int32,
    ctypes.c_int32,
)


class Unavailable(RuntimeError):
    """This version cannot be served by lleaves here; the message says why."""


@dataclass(frozen=True)
class CompiledForest:
    """A loaded artifact: ``predict(x)`` -> P(class 1) per row, summed in float64 like LightGBM."""

    engine: Any  # keeps the loaded code alive
    entry: Any
    n_features: int

    @classmethod
    def load(cls, version_dir: Path) -> "CompiledForest":
        manifest = check_artifact(version_dir)
        llvm = _llvm()
        blob = (version_dir / ARTIFACT).read_bytes()
        machine = _machine(llvm, manifest["target_cpu"], manifest["target_cpu_features"])
        engine = llvm.create_mcjit_compiler(llvm.parse_assembly(""), machine)
        engine.set_object_cache(getbuffer_func=lambda _module: blob)
        engine.finalize_object()
        engine.run_static_constructors()
        return cls(
            engine, _ENTRY_TYPE(engine.get_function_address(ENTRY)), int(manifest["n_features"])
        )

    def predict(self, x: np.ndarray) -> np.ndarray:
        if (
            x.ndim != 2 or x.shape[1] != self.n_features
        ):  # the code reads n_features doubles a row, unchecked
            raise InvalidRequest(
                f"expected rows of {self.n_features} features, got shape {list(x.shape)}"
            )
        if len(x) >= 2**31:
            raise InvalidRequest("too many rows for one call")
        rows = np.ascontiguousarray(x, dtype=np.float64)
        out = np.empty(len(rows), dtype=np.float64)
        # one thread, like ONNX Runtime's setting; ctypes drops the GIL for the call
        self.entry(
            rows.ctypes.data_as(ctypes.POINTER(ctypes.c_double)),
            out.ctypes.data_as(ctypes.POINTER(ctypes.c_double)),
            0,
            len(rows),
        )
        return out


def compile_version(version_dir: Path) -> dict[str, Any]:
    """Compile ``version_dir/model.txt`` into ``model.lleaves.o`` + manifest; returns the
    manifest."""
    llvm = _llvm()
    try:
        import llvmlite.ir
        from lleaves.compiler.ast import parse_to_ast
        from lleaves.compiler.codegen import gen_forest
    except ImportError as exc:
        raise Unavailable(f"lleaves' code generator is not importable ({exc})") from exc
    booster = version_dir / BOOSTER
    if not booster.is_file():
        raise Unavailable(f"no {BOOSTER} in {version_dir}")
    forest = parse_to_ast(str(booster))
    if forest.n_classes != 1:
        raise Unavailable(
            f"lleaves runtime serves binary models; this one has {forest.n_classes} classes"
        )
    forest.raw_score = False  # probabilities, as the ONNX graph outputs
    ir = llvmlite.ir.Module(name="forest")
    gen_forest(forest, ir, BLOCK_TREES, ENTRY, True)  # True: float64 sums
    ir.triple = llvm.get_process_triple()
    module = llvm.parse_assembly(str(ir))
    module.verify()
    cpu = _PORTABLE_CPU.get(platform.machine()) or llvm.get_host_cpu_name()
    features = "" if cpu in _PORTABLE_CPU.values() else llvm.get_host_cpu_features().flatten()
    machine = _machine(llvm, cpu, features)
    _optimize(llvm, module, machine)
    engine = llvm.create_mcjit_compiler(module, machine)
    emitted: list[bytes] = []
    engine.set_object_cache(notify_func=lambda _module, buffer: emitted.append(bytes(buffer)))
    engine.finalize_object()
    (version_dir / ARTIFACT).write_bytes(emitted[0])
    manifest = {
        "runtime": NAME,
        "artifact": ARTIFACT,
        "entry": ENTRY,
        "n_features": forest.n_args,
        "booster_sha256": _sha256(booster),
        "artifact_sha256": _sha256(version_dir / ARTIFACT),
        "triple": llvm.get_process_triple(),
        "target_cpu": cpu,
        "target_cpu_features": features,
        "lleaves": _version("lleaves"),
        "llvmlite": _version("llvmlite"),
    }
    (version_dir / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True))
    return manifest


def compile_text(booster_text: bytes) -> tuple[dict[str, bytes], CompiledForest]:
    """The build's entry: booster text in; the version's extra files (artifact, manifest) out,
    with the forest loaded back from that artifact, as a replica will load it, for checking."""
    with tempfile.TemporaryDirectory(prefix="lleaves-") as tmp:
        d = Path(tmp)
        (d / BOOSTER).write_bytes(booster_text)
        compile_version(d)
        files = {ARTIFACT: (d / ARTIFACT).read_bytes(), MANIFEST: (d / MANIFEST).read_bytes()}
        return files, CompiledForest.load(d)


def check_artifact(version_dir: Path) -> dict[str, Any]:
    """The manifest when the artifact can be loaded on this machine; else ``Unavailable``."""
    llvm = _llvm()
    for name in (BOOSTER, ARTIFACT, MANIFEST):
        if not (version_dir / name).is_file():
            raise Unavailable(f"{name} is missing")
    manifest = json.loads((version_dir / MANIFEST).read_text())
    missing = sorted(_MANIFEST_KEYS - set(manifest))
    if missing or manifest.get("entry") != ENTRY:
        raise Unavailable(
            f"{MANIFEST} is from another compiler version (lacks {missing or ['entry ' + ENTRY]})"
        )
    if manifest.get("booster_sha256") != _sha256(version_dir / BOOSTER):
        raise Unavailable(f"{ARTIFACT} was compiled from another {BOOSTER}")
    if manifest.get("artifact_sha256") != _sha256(version_dir / ARTIFACT):
        raise Unavailable(f"{ARTIFACT} does not match its manifest (truncated or replaced)")
    if manifest.get("triple") != llvm.get_process_triple():
        raise Unavailable(
            f"{ARTIFACT} targets {manifest.get('triple')}, "
            f"this machine is {llvm.get_process_triple()}"
        )
    cpu = manifest.get("target_cpu")
    if cpu not in _PORTABLE_CPU.values() and cpu != llvm.get_host_cpu_name():
        raise Unavailable(
            f"{ARTIFACT} is tuned for CPU {cpu}, this one is {llvm.get_host_cpu_name()}"
        )
    return manifest


class LleavesRuntime(ModelRuntime):
    """One input [N, F] FP32 -> one output [N, 1] FP32, like the ONNX graph it stands in for."""

    def __init__(self, spec: ModelSpec, version: VersionSpec) -> None:
        super().__init__(spec, version)
        if len(spec.inputs) != 1 or len(spec.outputs) != 1:
            raise Unavailable("lleaves serves models with one input and one output")
        self._input, self._output = spec.inputs[0].name, spec.outputs[0].name
        self._forest: CompiledForest | None = None

    def load(self) -> None:
        self._forest = CompiledForest.load(self.version.path)
        self.ready = True

    def predict(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self._forest is None:
            raise ModelNotReady(f"model '{self.name}' version {self.version.version} is not loaded")
        p = self._forest.predict(inputs[self._input])
        return {self._output: p.astype(np.float32).reshape(-1, 1)}

    def unload(self) -> None:
        self._forest = None
        super().unload()


def _llvm() -> Any:
    """llvmlite's binding, initialised for this process, once lleaves is known to be installed."""
    try:
        importlib.import_module("lleaves")  # the code generator; without it, ONNX Runtime serves
        import llvmlite.binding as llvm
    except ImportError as exc:
        raise Unavailable(f"the lleaves package is not importable ({exc})") from exc
    if hasattr(llvm, "PassManagerBuilder"):  # llvmlite < 0.45 must be initialised explicitly
        llvm.initialize()
    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()
    return llvm


def _machine(llvm: Any, cpu: str, features: str) -> Any:
    target = llvm.Target.from_triple(llvm.get_process_triple())
    # the large code model, as lleaves uses: big forests overflow the small one's offsets
    return target.create_target_machine(cpu=cpu, features=features, reloc="pic", codemodel="large")


def _optimize(llvm: Any, module: Any, machine: Any) -> None:
    """O3 with inlining, once: lleaves' own settings, in either llvmlite pass-manager API."""
    if hasattr(llvm, "PassManagerBuilder"):  # llvmlite < 0.45
        builder = llvm.PassManagerBuilder()
        builder.opt_level = 3
        builder.inlining_threshold = 1
        passes = llvm.ModulePassManager()
        builder.populate(passes)
        passes.run(module)
        return
    options = llvm.create_pipeline_tuning_options(speed_level=3)
    options.inlining_threshold = 1
    builder = llvm.create_pass_builder(machine, options)
    builder.getModulePassManager().run(module, builder)


def _version(package: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return "unknown"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
