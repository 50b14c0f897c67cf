"""Explainer artifacts written beside ``model.onnx``, and the build's check of each.

Both models explain in log-odds (the pre-sigmoid output), where attributions add up:
``base_value + sum(contributions) == log_odds`` for every row.

- **churn (GBDT)**: exact TreeSHAP, computed by LightGBM itself (``pred_contrib=True``)
  from ``model.txt``, the booster text the ONNX graph and the compiled trees were made
  from. Nothing extra is written; the build only checks the sums on the holdout.
- **engagement (MLP)**: DeepLIFT with the Rescale rule, written as an ONNX graph
  (``model.explain.onnx``) so a replica computes it with ONNX Runtime, without torch.
  The MLP is ``logit = MLP(h0)``, ``h0 = (log1p(max(x, 0)) - mu) / sd``. The baseline is
  ``h0' = 0``: the training mean of the model's own standardised input (the customer
  at the mean of every ``log1p`` feature, ``x' = expm1(mu)``). DeepLIFT-Rescale's
  multipliers obey the chain rule exactly for Linear and ReLU layers, so completeness
  holds up to float32 rounding (the build refuses more than ``COMPLETENESS_TOLERANCE``),
  unlike integrated gradients, whose Riemann sum only approaches it with many steps.
  The elementwise preprocessing is attributed to its own feature (its multiplier is
  ``dh0_i / dx_i`` by definition), so ``contribution_i = m_i * h0_i`` with ``m`` the
  back-propagated Rescale multipliers at ``h0``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from model_repo.training.export import INPUT_NAME

EXPLAINER_FILE = "model.explain.onnx"
CONTRIBUTIONS = "contributions"  # [N, F] float32, log-odds
LOG_ODDS = "log_odds"  # [N, 1] float32, the model's pre-sigmoid output
BASE_VALUE = "base_value"  # [1] float32, log-odds at the baseline
COMPLETENESS_TOLERANCE = 1e-4  # |base + sum(contributions) - log-odds| allowed, log-odds units
# exact TreeSHAP is costly per row (docs/benchmarks.md, "Explanations"): the build checks a
# sample of this many holdout rows, not all of them
TREE_CHECK_ROWS = 2000
RESCALE_EPS = (
    1e-6  # below this |a - a'| a ReLU's Rescale multiplier is its gradient (0/0 otherwise)
)
OPSET = 17
BASELINE = "training mean of the standardised log1p features (h0' = 0, x' = expm1(mu))"


def log1p_standardize(mu: Any, sd: Any) -> tuple[list[onnx.TensorProto], list[onnx.NodeProto]]:
    """The MLP's input transform as ONNX: ``h0 = (log1p(max(x, 0)) - mu) / sd``; the served
    graph and the explainer graph both start with it."""
    inits = [
        numpy_helper.from_array(np.zeros(1, np.float32), "zero"),
        numpy_helper.from_array(np.ones(1, np.float32), "one"),
        numpy_helper.from_array(np.asarray(mu, np.float32).reshape(1, -1), "mu"),
        numpy_helper.from_array(np.asarray(sd, np.float32).reshape(1, -1), "sd"),
    ]
    nodes = [
        helper.make_node("Max", [INPUT_NAME, "zero"], ["clipped"]),
        helper.make_node("Add", ["clipped", "one"], ["plus_one"]),
        helper.make_node("Log", ["plus_one"], ["logged"]),
        helper.make_node("Sub", ["logged", "mu"], ["centered"]),
        helper.make_node("Div", ["centered", "sd"], ["h0"]),
    ]
    return inits, nodes


def deeplift_onnx(
    mu: np.ndarray, sd: np.ndarray, linears: list[tuple[np.ndarray, np.ndarray]], n_features: int
) -> onnx.ModelProto:
    """The DeepLIFT-Rescale graph of the MLP ``linears`` ([(W [out, in], b [out])...], ReLU
    between them) with baseline ``h0' = 0``: outputs contributions, log-odds, base value."""
    ref = _reference_activations(linears)
    inits, nodes = log1p_standardize(mu, sd)
    inits += [
        numpy_helper.from_array(np.float32([RESCALE_EPS]), "eps"),
        numpy_helper.from_array(np.float32([ref[-1][0][0]]), "base"),
    ]
    last = len(linears) - 1
    for i, (w, b) in enumerate(linears):  # forward, keeping pre-activations
        inits += [
            numpy_helper.from_array(w.astype(np.float32), f"w{i}"),
            numpy_helper.from_array(b.astype(np.float32), f"b{i}"),
        ]
        out = LOG_ODDS if i == last else f"a{i + 1}"
        nodes.append(helper.make_node("Gemm", [f"h{i}", f"w{i}", f"b{i}"], [out], transB=1))
        if i < last:
            nodes.append(helper.make_node("Relu", [out], [f"h{i + 1}"]))
    # backward: m_L = w_L (1, H); m_{i} = (m_{i+1} * r_{i+1}) @ W_i, where r is the Rescale
    # multiplier of ReLU i+1
    inits.append(numpy_helper.from_array(linears[last][0].astype(np.float32), "m_top"))
    grad = "m_top"
    for i in range(last, 0, -1):
        a_ref, h_ref = ref[i - 1]
        inits += [
            numpy_helper.from_array(a_ref.reshape(1, -1), f"a{i}_ref"),
            numpy_helper.from_array(h_ref.reshape(1, -1), f"h{i}_ref"),
        ]
        nodes += _rescale(i)
        nodes += [
            helper.make_node("Mul", [grad, f"r{i}"], [f"g{i}"]),
            helper.make_node("MatMul", [f"g{i}", f"w{i - 1}"], [f"m{i - 1}"]),
        ]
        grad = f"m{i - 1}"
    nodes += [
        helper.make_node("Mul", [grad, "h0"], [CONTRIBUTIONS]),  # m * (h0 - h0'), h0' = 0
        helper.make_node("Identity", ["base"], [BASE_VALUE]),
    ]
    graph = helper.make_graph(
        nodes,
        "engagement_deeplift",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, [None, n_features])],
        [
            helper.make_tensor_value_info(CONTRIBUTIONS, TensorProto.FLOAT, [None, n_features]),
            helper.make_tensor_value_info(LOG_ODDS, TensorProto.FLOAT, [None, 1]),
            helper.make_tensor_value_info(BASE_VALUE, TensorProto.FLOAT, [1]),
        ],
        initializer=inits,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="reengage",
        ir_version=8,
    )
    for key, value in (
        ("method", "deeplift_rescale"),
        ("output", "log_odds"),
        ("baseline", BASELINE),
    ):
        model.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(model)
    return model


def _rescale(i: int) -> list[onnx.NodeProto]:
    """r_i = (h_i - h_i') / (a_i - a_i') where |a_i - a_i'| > eps, else 1[a_i > 0]."""
    return [
        helper.make_node("Sub", [f"a{i}", f"a{i}_ref"], [f"da{i}"]),
        helper.make_node("Sub", [f"h{i}", f"h{i}_ref"], [f"dh{i}"]),
        helper.make_node("Abs", [f"da{i}"], [f"abs_da{i}"]),
        helper.make_node("Greater", [f"abs_da{i}", "eps"], [f"wide{i}"]),
        helper.make_node("Where", [f"wide{i}", f"da{i}", "one"], [f"den{i}"]),
        helper.make_node("Div", [f"dh{i}", f"den{i}"], [f"ratio{i}"]),
        helper.make_node("Greater", [f"a{i}", "zero"], [f"on{i}"]),
        helper.make_node("Cast", [f"on{i}"], [f"step{i}"], to=TensorProto.FLOAT),
        helper.make_node("Where", [f"wide{i}", f"ratio{i}", f"step{i}"], [f"r{i}"]),
    ]


def _reference_activations(
    linears: list[tuple[np.ndarray, np.ndarray]],
) -> list[tuple[np.ndarray, np.ndarray]]:
    """(pre-activation, activation) of every layer at the baseline ``h0' = 0``, float32."""
    h = np.zeros(linears[0][0].shape[1], np.float32)
    out = []
    for i, (w, b) in enumerate(linears):
        a = (w.astype(np.float32) @ h + b.astype(np.float32)).astype(np.float32)
        h = a if i == len(linears) - 1 else np.maximum(a, 0).astype(np.float32)
        out.append((a, h))
    return out


def run_explainer(
    model: onnx.ModelProto | bytes, x: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(contributions [N, F], log-odds [N], base value [N]) from an explainer graph."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    blob = model if isinstance(model, bytes) else model.SerializeToString()
    sess = ort.InferenceSession(blob, opts, providers=["CPUExecutionProvider"])
    c, z, base = sess.run(
        [CONTRIBUTIONS, LOG_ODDS, BASE_VALUE], {INPUT_NAME: np.ascontiguousarray(x, np.float32)}
    )
    return c, z[:, 0], np.full(len(x), float(base[0]))


def tree_shap(booster: Any, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(contributions [N, F], log-odds [N], base value [N]) by LightGBM's exact TreeSHAP."""
    rows = np.asarray(x, dtype=np.float32)
    out = booster.predict(rows, pred_contrib=True, num_threads=1)
    return out[:, :-1], booster.predict(rows, raw_score=True, num_threads=1), out[:, -1]


def check(name: str, fitted: Any, files: dict[str, bytes], x: np.ndarray) -> dict[str, Any]:
    """The explainer's metrics for metrics.json; raises when completeness fails on ``x``.

    Completeness is checked against the *model's* log-odds (LightGBM's raw score, the
    MLP's logit from torch), not the explainer's own forward pass.
    """
    if EXPLAINER_FILE in files:
        c, z, base = run_explainer(files[EXPLAINER_FILE], x)
        reference = fitted.logit(x) if hasattr(fitted, "logit") else _logit(fitted.predict(x))
        method, source = "deeplift_rescale", EXPLAINER_FILE
        extra = {"baseline": BASELINE}
        drift = float(
            np.max(np.abs(z - reference), initial=0.0)
        )  # the graph's forward vs the model
    elif getattr(fitted, "booster", None) is not None:
        x = x[:TREE_CHECK_ROWS]
        c, z, base = tree_shap(fitted.booster, x)
        method, source, extra, drift = (
            "tree_shap",
            "model.txt",
            {"baseline": "path-dependent (tree covers)"},
            0.0,
        )
    else:
        return {}
    gap = float(np.max(np.abs(base + c.sum(axis=1, dtype=np.float64) - z), initial=0.0))
    if gap > COMPLETENESS_TOLERANCE or drift > 1e-3:
        raise ValueError(
            f"{name}: explainer completeness gap {gap:.2e} (forward drift {drift:.2e}) "
            f"exceeds {COMPLETENESS_TOLERANCE:g}"
        )
    return {
        "explainer": {
            "method": method,
            "file": source,
            "output": "log_odds",
            "max_completeness_gap": gap,
            "tolerance": COMPLETENESS_TOLERANCE,
            **extra,
        }
    }


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, np.float64), 1e-12, 1 - 1e-12)
    return np.log(p) - np.log1p(-p)
