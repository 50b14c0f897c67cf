"""Engagement: a small MLP (PyTorch), written to ONNX by hand with onnx.helper.

The network computes ``sigmoid(MLP((log1p(max(x, 0)) - mu) / sd))``: counts and money
are heavy-tailed, so the log and the standardization live *inside* the model and the
server feeds raw features. The graph is spelled out with onnx.helper instead of
``torch.onnx.export`` (whose default dynamo path needs onnxscript): it is eight ops,
and the contract's input/output names and shapes are exact by construction.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from model_repo.training.common import TrainingData
from model_repo.training.explain import EXPLAINER_FILE, deeplift_onnx, log1p_standardize
from model_repo.training.export import INPUT_NAME, OUTPUT_NAME

NAME = "engagement"
FEATURE_SERVICE = "engagement_model"
LABEL = "engaged"
P_COLUMN = "p_engaged"
PARAMS: dict[str, Any] = {
    "hidden": [64, 32],
    "epochs": 10,
    "batch_size": 512,
    "learning_rate": 3e-3,
    "weight_decay": 1e-5,
    "validation_share": 0.1,
    "seed": 7,
}
OPSET = 17


class EngagementModel:
    """Preprocessing constants plus the torch MLP; ``predict`` is the ONNX reference."""

    def __init__(self, mu: np.ndarray, sd: np.ndarray, net: Any) -> None:
        self.mu, self.sd, self.net = mu.astype(np.float32), sd.astype(np.float32), net

    def _prep(self, x: np.ndarray) -> np.ndarray:
        return ((np.log1p(np.maximum(x, 0)) - self.mu) / self.sd).astype(np.float32)

    def predict(self, x: np.ndarray) -> np.ndarray:
        import torch

        return torch.sigmoid(torch.from_numpy(self.logit(x))).numpy()

    def logit(self, x: np.ndarray) -> np.ndarray:
        """The pre-sigmoid output (log-odds) per row: what the explanations add up to."""
        import torch

        with torch.no_grad():
            return self.net(torch.from_numpy(self._prep(np.asarray(x, dtype=np.float32)))).numpy()[
                :, 0
            ]

    def to_onnx(self, n_features: int) -> onnx.ModelProto:
        return mlp_to_onnx(self, n_features)

    def linears(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """(weight [out, in], bias [out]) of each Linear layer, ReLU between them."""
        return [
            (
                m.weight.detach().numpy().astype(np.float32),
                m.bias.detach().numpy().astype(np.float32),
            )
            for m in self.net
            if hasattr(m, "weight")
        ]

    def files(self) -> dict[str, bytes]:
        """Extra files of the version: the DeepLIFT explainer graph (``training/explain.py``)."""
        n_features = self.linears()[0][0].shape[1]
        graph = deeplift_onnx(self.mu, self.sd, self.linears(), n_features)
        return {EXPLAINER_FILE: graph.SerializeToString()}


def _net(n_in: int, hidden: list[int]) -> Any:
    import torch

    layers: list[Any] = []
    for width in hidden:
        layers += [torch.nn.Linear(n_in, width), torch.nn.ReLU()]
        n_in = width
    layers.append(torch.nn.Linear(n_in, 1))
    return torch.nn.Sequential(*layers)


def fit(data: TrainingData, params: dict[str, Any], threads: int = 1) -> EngagementModel:
    """Adam on BCE; keeps the epoch with the best validation loss (a slice of train).

    One thread: batches of this tiny net are too small to split, and on busy shared
    cores more threads wait on each other instead of helping.
    """
    import torch

    torch.manual_seed(params["seed"])
    torch.set_num_threads(1)
    del threads
    x, y = data.train
    logx = np.log1p(np.maximum(x, 0)).astype(np.float64)
    mu, sd = logx.mean(axis=0), logx.std(axis=0)
    sd = np.where(sd > 1e-6, sd, 1.0)
    model = EngagementModel(mu, sd, _net(x.shape[1], params["hidden"]))
    z = torch.from_numpy(model._prep(x))
    t = torch.from_numpy(y.astype(np.float32)).unsqueeze(1)
    rng = np.random.default_rng(params["seed"])
    order = rng.permutation(len(z))
    n_val = int(len(z) * params["validation_share"])
    val, trn = order[:n_val], order[n_val:]
    return _train(model, z, t, trn, val, params, rng)


def _train(
    model: EngagementModel,
    z: Any,
    t: Any,
    trn: np.ndarray,
    val: np.ndarray,
    params: dict[str, Any],
    rng: np.random.Generator,
) -> EngagementModel:
    import copy

    import torch

    net = model.net
    opt = torch.optim.Adam(
        net.parameters(), lr=params["learning_rate"], weight_decay=params["weight_decay"]
    )
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=params["epochs"])
    loss_fn = torch.nn.BCEWithLogitsLoss()
    best, best_state = float("inf"), copy.deepcopy(net.state_dict())
    bs = params["batch_size"]
    for _ in range(params["epochs"]):
        net.train()
        perm = torch.from_numpy(rng.permutation(trn))
        for i in range(0, len(perm), bs):
            idx = perm[i : i + bs]
            opt.zero_grad()
            loss_fn(net(z[idx]), t[idx]).backward()
            opt.step()
        sched.step()
        net.eval()
        with torch.no_grad():
            v = float(loss_fn(net(z[val]), t[val]))
        if v < best:
            best, best_state = v, copy.deepcopy(net.state_dict())
    net.load_state_dict(best_state)
    net.eval()
    return model


def mlp_to_onnx(model: EngagementModel, n_features: int) -> onnx.ModelProto:
    """Max(x,0) -> Log1p -> standardize -> (Gemm, Relu)* -> Gemm -> Sigmoid."""
    linears = model.linears()
    inits, nodes = log1p_standardize(model.mu, model.sd)
    for i, (w, b) in enumerate(linears):
        inits += [numpy_helper.from_array(w, f"w{i}"), numpy_helper.from_array(b, f"b{i}")]
        last = i == len(linears) - 1
        out = "logit" if last else f"a{i + 1}"
        nodes.append(helper.make_node("Gemm", [f"h{i}", f"w{i}", f"b{i}"], [out], transB=1))
        if not last:
            nodes.append(helper.make_node("Relu", [out], [f"h{i + 1}"]))
    nodes.append(helper.make_node("Sigmoid", ["logit"], [OUTPUT_NAME]))
    graph = helper.make_graph(
        nodes,
        "engagement_mlp",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, [None, n_features])],
        [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, [None, 1])],
        initializer=inits,
    )
    return helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="reengage",
        ir_version=8,
    )
