"""Explainers of a served model version: per-feature contributions in log-odds.

A version is explainable when the build left an explainer beside its ``model.onnx``
(``model_repo/training/explain.py`` writes and checks them):

- ``model.explain.onnx``: an ONNX graph (DeepLIFT-Rescale for the engagement MLP) run
  by ONNX Runtime, outputs ``contributions`` [N, F], ``log_odds`` [N, 1], ``base_value``.
- ``model.txt``: the LightGBM booster the served trees were made from; exact TreeSHAP by
  LightGBM's own ``pred_contrib=True`` (its last column is the expected value).

Anything else (a version built before explainers, a foreign model) is refused with
``ExplainerUnavailable``, never skipped. Every explainer returns numpy arrays with
``base_value + contributions.sum(1) == log_odds`` per row.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from serving.errors import ExplainerUnavailable
from serving.repository import VersionSpec

GRAPH_FILE = "model.explain.onnx"
BOOSTER_FILE = "model.txt"


@dataclass(frozen=True)
class Attribution:
    """One explainer call over N rows: float64 arrays, rows in input order."""

    contributions: np.ndarray  # (N, F), column order = the model's features
    base_value: np.ndarray  # (N,)
    log_odds: np.ndarray  # (N,)
    method: str


class Explainer(ABC):
    method: str = ""

    def __init__(self, version: VersionSpec, threads: int = 1) -> None:
        self.version = version
        self.threads = max(int(threads), 1)

    @property
    def features(self) -> tuple[str, ...]:
        return self.version.features

    @abstractmethod
    def explain(self, x: np.ndarray) -> Attribution:
        """Contributions of the rows ``x`` ([N, F] in ``features`` order)."""


class TreeShapExplainer(Explainer):
    """Exact TreeSHAP of the booster text the served trees were built from."""

    method = "tree_shap"

    def __init__(self, version: VersionSpec, threads: int = 1) -> None:
        super().__init__(version, threads)
        try:
            import lightgbm as lgb
        except (
            ImportError
        ) as exc:  # a dependency of the package; an install without it cannot explain trees
            raise ExplainerUnavailable(
                f"lightgbm is not importable ({exc})", field="explain"
            ) from None
        self._booster: Any = lgb.Booster(model_file=str(version.path / BOOSTER_FILE))

    def explain(self, x: np.ndarray) -> Attribution:
        rows = np.ascontiguousarray(x, dtype=np.float32)  # the served trees see float32 inputs
        if len(rows) == 0:
            empty = np.zeros(0)
            return Attribution(np.zeros((0, rows.shape[1])), empty, empty, self.method)
        out = self._booster.predict(rows, pred_contrib=True, num_threads=self.threads)
        contributions, base = out[:, :-1], out[:, -1]
        return Attribution(contributions, base, base + contributions.sum(axis=1), self.method)


class OnnxGraphExplainer(Explainer):
    """An attribution graph exported by the build, run by ONNX Runtime (no torch)."""

    method = "deeplift_rescale"

    def __init__(self, version: VersionSpec, threads: int = 1) -> None:
        import onnxruntime as ort

        super().__init__(version, threads)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = self.threads
        opts.inter_op_num_threads = 1
        self._session = ort.InferenceSession(
            str(version.path / GRAPH_FILE), opts, providers=["CPUExecutionProvider"]
        )
        self._input = self._session.get_inputs()[0].name
        method = self._session.get_modelmeta().custom_metadata_map.get("method")
        self.method = (
            method or (version.metrics.get("explainer") or {}).get("method") or self.method
        )

    def explain(self, x: np.ndarray) -> Attribution:
        rows = np.ascontiguousarray(x, dtype=np.float32)
        c, z, base = self._session.run(
            ["contributions", "log_odds", "base_value"], {self._input: rows}
        )
        return Attribution(
            c.astype(np.float64),
            np.full(len(rows), float(base[0])),
            z[:, 0].astype(np.float64),
            self.method,
        )


def explainer_for(name: str, version: VersionSpec, threads: int = 1) -> Explainer:
    """The explainer the build left for model ``name``'s ``version``; ``ExplainerUnavailable``
    if none."""
    path: Path = version.path
    if (path / GRAPH_FILE).is_file():
        return OnnxGraphExplainer(version, threads)
    if (path / BOOSTER_FILE).is_file():
        return TreeShapExplainer(version, threads)
    raise ExplainerUnavailable(
        f"model '{name}' version {version.version} has no explainer "
        f"(no {GRAPH_FILE} or {BOOSTER_FILE}); rebuild it with `reengage build`",
        field="explain",
    )
