"""A tiny but real model repository: logistic-regression ONNX graphs run by ONNX Runtime."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from google.protobuf import text_format
from onnx import TensorProto, helper
from tritonclient.grpc import model_config_pb2

FEATURES = ("a", "b", "c")


def logistic_onnx(weights: np.ndarray, bias: float) -> onnx.ModelProto:
    """probability = sigmoid(features @ w + b), shapes [-1, F] -> [-1, 1]."""
    f = len(weights)
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["features", "w"], ["z0"]),
            helper.make_node("Add", ["z0", "b"], ["z"]),
            helper.make_node("Sigmoid", ["z"], ["probability"]),
        ],
        "logistic",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, [None, f])],
        [helper.make_tensor_value_info("probability", TensorProto.FLOAT, [None, 1])],
        [
            helper.make_tensor(
                "w", TensorProto.FLOAT, [f, 1], weights.astype(np.float32).ravel().tolist()
            ),
            helper.make_tensor("b", TensorProto.FLOAT, [1], [bias]),
        ],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)


def write_config(model_dir: Path, name: str, n_features: int, policy: str = "all {}") -> None:
    config = model_config_pb2.ModelConfig(
        name=name, platform="onnxruntime_onnx", max_batch_size=10_000
    )
    config.input.add(name="features", data_type=model_config_pb2.TYPE_FP32, dims=[n_features])
    config.output.add(name="probability", data_type=model_config_pb2.TYPE_FP32, dims=[1])
    config.dynamic_batching.max_queue_delay_microseconds = 2000
    text_format.Parse(f"version_policy {{ {policy} }}", config)
    config.parameters["feature_service"].string_value = f"{name}_service"
    model_dir.mkdir(parents=True, exist_ok=True)
    (model_dir / "config.pbtxt").write_text(text_format.MessageToString(config))


def write_version(
    model_dir: Path, version: int, weights: np.ndarray, bias: float, features: tuple[str, ...]
) -> Path:
    vdir = model_dir / str(version)
    vdir.mkdir(parents=True)
    onnx.save(logistic_onnx(weights, bias), vdir / "model.onnx")
    (vdir / "metrics.json").write_text(json.dumps({"features": list(features), "holdout_auc": 0.5}))
    return vdir


@pytest.fixture
def model_repo(tmp_path: Path) -> Path:
    """churn (versions 1, 2) and engagement (version 1) over features a, b, c."""
    repo = tmp_path / "model_repo"
    write_config(repo / "churn", "churn", 3)
    write_version(repo / "churn", 1, np.array([1.0, -1.0, 0.5]), 0.1, FEATURES)
    write_version(repo / "churn", 2, np.array([2.0, -0.5, 0.0]), -0.2, FEATURES)
    write_config(repo / "engagement", "engagement", 2)
    write_version(repo / "engagement", 1, np.array([0.3, 0.7]), 0.0, ("c", "a"))
    (repo / "training").mkdir()  # code folders without config.pbtxt are not models
    return repo


class TableReader:
    """An in-memory FeatureReader over a dense id range, for HTTP-layer unit tests.

    The real readers (Feast, packed) are covered in tests/feature_store and end to end.
    """

    names = FEATURES
    views = ("v",)

    def __init__(self, n: int = 100, seed: int = 0) -> None:
        self.table = np.random.default_rng(seed).normal(size=(n, len(FEATURES))).astype(np.float32)
        self.ts = 1_700_000_000.0
        self.erased = np.zeros(n, bool)  # rows an erasure removed

    def read(self, entity_ids: np.ndarray):
        from feature_store.batch import FeatureBatch

        found = (entity_ids >= 0) & (entity_ids < len(self.table))
        found[found] &= ~self.erased[entity_ids[found]]
        values = np.full((len(entity_ids), len(FEATURES)), np.nan, dtype=np.float32)
        values[found] = self.table[entity_ids[found]]
        ts = np.where(found, self.ts, np.nan)[:, None]
        return FeatureBatch(values, found, ts, FEATURES, self.views)


class LocalFeatures:
    def __init__(self, reader: TableReader) -> None:
        self.reader = reader

    async def lookup(self, entity_ids: np.ndarray):
        return self.reader.read(entity_ids)

    async def contact(self, entity_id: int, service: str = "email_writer") -> dict[str, str]:
        """The email writer's string facts of one customer (the writer's routes read them)."""
        return {"first_name": f"Customer{entity_id}", "plan_name": "standard"}

    async def forget(
        self, customer_id: int, suppressed: list[str], key_source: str
    ) -> dict[str, int]:
        """An erasure: the row reads as not found from now on."""
        held = 0 <= customer_id < len(self.reader.table) and not self.reader.erased[customer_id]
        if 0 <= customer_id < len(self.reader.table):
            self.reader.erased[customer_id] = True
        self.suppressed = suppressed
        return {"v": int(held)}


def admin_headers(settings) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """The bootstrap admin token (every role) in ``settings``' data dir, as a bearer header:
    feedback and admin routes need a token by default."""
    from serving.security import bearer_headers, ensure_admin_token

    from serving.security.shared_tokens import watch_tokens

    path, _ = ensure_admin_token(settings)
    watch_tokens(
        settings
    ).refresh()  # an app already made in this process knows it now, not 0.25 s later
    return bearer_headers(path.read_text().strip())


@pytest.fixture
def reader() -> TableReader:
    return TableReader()


@pytest.fixture
def client(model_repo: Path, reader: TableReader, tmp_path: Path):
    """FastAPI TestClient over a DataPlane with real ONNX Runtime models (no Ray)."""
    from fastapi.testclient import TestClient

    from serving.dataplane import DataPlane
    from serving.http import create_app
    from serving.components.models import ModelService
    from serving.settings import load_settings

    settings = load_settings(
        {
            "models": {"repo_path": str(model_repo)},
            "data_dir": str(tmp_path / "data"),
            "bandit": {"enabled": False},
        }
    )
    models = {name: ModelService(name, settings.models) for name in ("churn", "engagement")}
    dataplane = DataPlane(settings, LocalFeatures(reader), models)
    with TestClient(
        create_app(dataplane), raise_server_exceptions=False, headers=admin_headers(settings)
    ) as c:
        yield c
