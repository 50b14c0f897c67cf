"""Churn: LightGBM gradient-boosted trees, exported to ONNX with onnxmltools.

onnxmltools gives ``label`` and ``probabilities`` [N, 2] (zipmap off); a Slice appended
to the graph exposes only P(churn) as ``probability`` [N, 1], the one output our
runtime and Triton configs expect.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper

from model_repo.training.common import TrainingData
from model_repo.training.export import INPUT_NAME, OUTPUT_NAME

NAME = "churn"
FEATURE_SERVICE = "churn_model"
LABEL = "churned"
P_COLUMN = "p_churn"
PARAMS: dict[str, Any] = {
    "n_estimators": 300,
    "learning_rate": 0.05,
    "num_leaves": 15,
    "min_child_samples": 100,
    "reg_lambda": 1.0,
    "subsample": 1.0,
    "colsample_bytree": 1.0,
    "max_bin": 255,
    "deterministic": True,
    "seed": 7,
}
TARGET_OPSET = 15
BOOSTER_FILE = "model.txt"  # LightGBM's text format, as Triton's FIL backend names it
# Served by the trees compiled from model.txt, faster than ONNX Runtime at every batch
# size (docs/benchmarks.md, "Tree runtimes"); ONNX Runtime stays the fallback.
RUNTIME = "lleaves"


class ChurnModel:
    """The fitted LightGBM model; ``predict`` (LightGBM's own) is the ONNX reference.

    LightGBM keeps split thresholds in float64, ONNX's TreeEnsemble in float32: a
    threshold rounded *up* sends a feature equal to the rounded value the other way
    (we saw 1e-2 probability gaps). Since inputs are float32, ``x <= t`` equals
    ``x <= round_down_f32(t)``, so we rewrite every threshold that way before export:
    LightGBM's predictions are unchanged and the ONNX graph then agrees exactly.
    """

    def __init__(self, params: dict[str, Any], threads: int) -> None:
        from lightgbm import LGBMClassifier

        self.clf = LGBMClassifier(**params, n_jobs=threads, verbose=-1)
        self.booster: Any = None

    def fit(self, x: np.ndarray, y: np.ndarray) -> "ChurnModel":
        import lightgbm as lgb

        self.clf.fit(x, y)
        text = float32_thresholds(self.clf.booster_.model_to_string())
        self.booster = lgb.Booster(model_str=text)
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.booster.predict(np.asarray(x, dtype=np.float32))

    def to_onnx(self, n_features: int) -> onnx.ModelProto:
        return lightgbm_to_onnx(self.booster, n_features)

    def files(self) -> dict[str, bytes]:
        """Extra files of the version: the booster text the ONNX graph was made from.

        Saved beside ``model.onnx`` so tree compilers (``serving/runtime``) can compile
        the very same trees; thresholds are the float32-rounded ones.
        """
        return {BOOSTER_FILE: self.booster.model_to_string().encode()}


def float32_thresholds(model_text: str) -> str:
    """Round every ``threshold=`` of a LightGBM model text down to a float32 value."""
    lines = model_text.split("\n")
    lines = [line for line in lines if not line.startswith("tree_sizes=")]  # byte sizes change
    for i, line in enumerate(lines):
        if line.startswith("threshold="):
            t = np.array(line[len("threshold=") :].split(), dtype=np.float64)
            down = t.astype(np.float32)
            up = down.astype(np.float64) > t
            down[up] = np.nextafter(down[up], np.float32(-np.inf))
            lines[i] = "threshold=" + " ".join(repr(float(v)) for v in down)
    return "\n".join(lines)


def fit(data: TrainingData, params: dict[str, Any], threads: int = 1) -> ChurnModel:
    x, y = data.train
    return ChurnModel(params, threads).fit(x, y)


def lightgbm_to_onnx(booster: Any, n_features: int) -> onnx.ModelProto:
    """Convert, then rewire the graph so ``probability`` = probabilities[:, 1:2] is the only
    output."""
    import onnxmltools
    from onnxmltools.convert.common.data_types import FloatTensorType

    model = onnxmltools.convert_lightgbm(
        booster,
        name="churn",
        initial_types=[(INPUT_NAME, FloatTensorType([None, n_features]))],
        target_opset=TARGET_OPSET,
        zipmap=False,
    )
    g = model.graph
    probs = next(o.name for o in g.output if "prob" in o.name)  # [N, 2]; the other is "label"
    g.initializer.extend(
        [
            helper.make_tensor("slice_starts", TensorProto.INT64, [1], [1]),
            helper.make_tensor("slice_ends", TensorProto.INT64, [1], [2]),
            helper.make_tensor("slice_axes", TensorProto.INT64, [1], [1]),
        ]
    )
    g.node.append(
        helper.make_node(
            "Slice",
            [probs, "slice_starts", "slice_ends", "slice_axes"],
            [OUTPUT_NAME],
            name="positive_class",
        )
    )
    del g.output[:]
    _ensure_opset(model, "", TARGET_OPSET)  # the tree-only graph imports just ai.onnx.ml
    g.output.append(helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, [None, 1]))
    _dynamic_batch(g.input[0])
    return model


def _ensure_opset(model: onnx.ModelProto, domain: str, version: int) -> None:
    for op in model.opset_import:
        if op.domain == domain:
            op.version = max(op.version, version)
            return
    model.opset_import.append(helper.make_opsetid(domain, version))


def _dynamic_batch(vi: onnx.ValueInfoProto) -> None:
    """Leave the batch dimension unnamed and unset: shape [-1, F] for every reader."""
    dim = vi.type.tensor_type.shape.dim[0]
    dim.ClearField("dim_param")
    dim.ClearField("dim_value")
