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


def test_health_metadata_and_infer(
    client: grpcclient.InferenceServerClient, admin_token: str
) -> None:
    assert client.is_server_live() and client.is_server_ready() and client.is_model_ready("churn")
    meta = client.get_model_metadata("churn", as_json=True)
    n_features = int(meta["inputs"][0]["shape"][1])
    x = np.random.default_rng(2).random((16, n_features), dtype=np.float32)
    inp = grpcclient.InferInput("features", list(x.shape), "FP32")
    inp.set_data_from_numpy(x)
    p = client.infer("churn", [inp], model_version=meta["versions"][-1]).as_numpy("probability")
    assert p.shape == (16, 1) and np.all((p >= 0) & (p <= 1))
    # the repository is the admin group: a token in the call's metadata
    index = client.get_model_repository_index(
        headers={"authorization": f"Bearer {admin_token}"}, as_json=True
    )["models"]
    assert any(m["name"] == "engagement" and m["state"] == "READY" for m in index)


def test_errors_carry_grpc_status(client: grpcclient.InferenceServerClient) -> None:
    inp = grpcclient.InferInput("features", [2, 3], "FP32")
    inp.set_data_from_numpy(np.zeros((2, 3), dtype=np.float32))
    with pytest.raises(InferenceServerException) as bad_shape:
        client.infer("churn", [inp])
    assert (
        "INVALID_ARGUMENT" in str(bad_shape.value.status()) and "shape" in bad_shape.value.message()
    )
    with pytest.raises(InferenceServerException) as missing:
        client.infer("nope", [inp])
    assert "NOT_FOUND" in str(missing.value.status())


def test_typed_contents_score_like_raw_contents(
    client: grpcclient.InferenceServerClient, app_overrides: dict[str, Any]
) -> None:
    """KServe clients may send typed ``InferTensorContents`` instead of raw bytes."""
    import grpc
    from tritonclient.grpc import service_pb2, service_pb2_grpc

    n_features = int(client.get_model_metadata("churn", as_json=True)["inputs"][0]["shape"][1])
    x = np.random.default_rng(5).random((8, n_features), dtype=np.float32)
    inp = grpcclient.InferInput("features", list(x.shape), "FP32")
    inp.set_data_from_numpy(x)
    raw = client.infer("churn", [inp]).as_numpy("probability")

    def typed(
        datatype: str, field: str, values: list, shape: list[int]
    ) -> service_pb2.ModelInferRequest:
        request = service_pb2.ModelInferRequest(model_name="churn")
        tensor = request.inputs.add(name="features", datatype=datatype, shape=shape)
        getattr(tensor.contents, field).extend(values)
        return request

    with grpc.insecure_channel(f"127.0.0.1:{app_overrides['server']['grpc_port']}") as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        answer = stub.ModelInfer(
            typed("FP32", "fp32_contents", x.ravel().tolist(), list(x.shape)), timeout=30
        )
        out = answer.outputs[0]
        p = np.frombuffer(answer.raw_output_contents[0], np.float32).reshape(list(out.shape))
        assert out.name == "probability" and out.datatype == "FP32"
        np.testing.assert_array_equal(p, raw)
        # int64_contents decoded (the model then names the datatype it takes)
        ints = typed("INT64", "int64_contents", [1] * x.size, list(x.shape))
        with pytest.raises(grpc.RpcError) as wrong_type:
            stub.ModelInfer(ints, timeout=30)
        assert wrong_type.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert wrong_type.value.details().startswith("inputs[features].datatype")
        short = typed("FP32", "fp32_contents", [0.5] * (x.size - 1), list(x.shape))
        with pytest.raises(grpc.RpcError) as miscounted:
            stub.ModelInfer(short, timeout=30)
        assert miscounted.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert miscounted.value.details().startswith("inputs[features].contents")
