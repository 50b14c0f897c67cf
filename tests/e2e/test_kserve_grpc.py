"""KServe v2 over gRPC with tritonclient.grpc, unchanged."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def client(app_url: str, app_overrides: dict[str, Any]) -> grpcclient.InferenceServerClient:
    return grpcclient.InferenceServerClient(f"127.0.0.1:{app_overrides['server']['grpc_port']}")


def test_health_metadata_and_infer(client: grpcclient.InferenceServerClient) -> None:
    assert client.is_server_live() and client.is_server_ready() and client.is_model_ready("churn")
    meta = client.get_model_metadata("churn", as_json=True)
    n_features = int(meta["inputs"][0]["shape"][1])
    x = np.random.default_rng(2).random((16, n_features), dtype=np.float32)
    inp = grpcclient.InferInput("features", list(x.shape), "FP32")
    inp.set_data_from_numpy(x)
    p = client.infer("churn", [inp], model_version=meta["versions"][-1]).as_numpy("probability")
    assert p.shape == (16, 1) and np.all((p >= 0) & (p <= 1))
    index = client.get_model_repository_index(as_json=True)["models"]
    assert any(m["name"] == "engagement" and m["state"] == "READY" for m in index)


def test_errors_carry_grpc_status(client: grpcclient.InferenceServerClient) -> None:
    inp = grpcclient.InferInput("features", [2, 3], "FP32")
    inp.set_data_from_numpy(np.zeros((2, 3), dtype=np.float32))
    with pytest.raises(InferenceServerException) as bad_shape:
        client.infer("churn", [inp])
    assert "INVALID_ARGUMENT" in str(bad_shape.value.status()) and "shape" in bad_shape.value.message()
    with pytest.raises(InferenceServerException) as missing:
        client.infer("nope", [inp])
    assert "NOT_FOUND" in str(missing.value.status())
