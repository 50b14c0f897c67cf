from __future__ import annotations

import numpy as np
import pytest
import tritonclient.http as httpclient

from serving.protocol.v2 import (
    InferenceResponse,
    ModelMetadataResponse,
    ModelReadyResponse,
    OIPErrorResponse,
    RepositoryIndexResponse,
    RepositoryModelResponse,
    ServerLiveResponse,
    ServerMetadataResponse,
    ServerReadyResponse,
)

HEADER = "Inference-Header-Content-Length"


def _binary_request(
    x: np.ndarray, datatype: str = "FP32", name: str = "features"
) -> tuple[bytes, dict[str, str]]:
    inp = httpclient.InferInput(name, list(x.shape), datatype)
    inp.set_data_from_numpy(x, binary_data=True)
    body, header_length = httpclient.InferenceServerClient.generate_request_body([inp])
    headers = {"content-type": "application/octet-stream"}
    if header_length is not None:
        headers[HEADER] = str(header_length)
    return body, headers


def test_server_and_model_metadata(client) -> None:
    # every answer is exactly its declared type (extra="forbid", required fields)
    assert ServerLiveResponse.model_validate(client.get("/v2/health/live").json()).live
    ready = client.get("/v2/health/ready")
    assert ready.status_code == 200 and ServerReadyResponse.model_validate(ready.json()).ready
    server = ServerMetadataResponse.model_validate(client.get("/v2").json())
    assert server.extensions == [
        "binary_tensor_data",
        "model_repository",
    ]  # only what is implemented
    meta = ModelMetadataResponse.model_validate(client.get("/v2/models/churn").json())
    assert meta.versions == ["1", "2"] and meta.platform == "onnxruntime_onnx"
    assert [t.model_dump(mode="json") for t in meta.inputs] == [
        {"name": "features", "datatype": "FP32", "shape": [-1, 3]}
    ]
    assert meta.parameters.features == ["a", "b", "c"] and meta.parameters.version == "2"
    older = ModelMetadataResponse.model_validate(client.get("/v2/models/churn/versions/1").json())
    assert older.parameters.version == "1"
    model_ready = client.get("/v2/models/churn/versions/1/ready")
    assert (
        model_ready.status_code == 200
        and ModelReadyResponse.model_validate(model_ready.json()).ready
    )
    unknown = client.get("/v2/models/nope/ready")  # an unknown model is not found, not "not ready"
    assert unknown.status_code == 404 and "nope" in unknown.json()["error"]  # the OIP error body


def test_binary_infer_round_trips_through_tritonclient_codecs(client) -> None:
    x = np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]], dtype=np.float32)
    body, headers = _binary_request(x)
    r = client.post("/v2/models/churn/versions/1/infer", content=body, headers=headers)
    assert r.status_code == 200, r.text
    result = httpclient.InferenceServerClient.parse_response_body(
        r.content, header_length=int(r.headers[HEADER]) if HEADER in r.headers else None
    )
    expected = 1 / (1 + np.exp(-(x @ np.array([1.0, -1.0, 0.5]) + 0.1)))
    np.testing.assert_allclose(result.as_numpy("probability").ravel(), expected, rtol=1e-6)
    assert result.get_response()["model_version"] == "1"


def test_json_infer_default_version(client) -> None:
    payload = {
        "inputs": [{"name": "features", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}]
    }
    r = client.post("/v2/models/churn/infer", json=payload)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["model_version"] == "2" and out["outputs"][0]["shape"] == [1, 1]
    InferenceResponse.model_validate(out)
    with_id = client.post("/v2/models/churn/infer", json={**payload, "id": "r1"}).json()
    assert InferenceResponse.model_validate(with_id).id == "r1"


@pytest.mark.parametrize(
    "path,payload,status,field",
    [
        ("/v2/models/nope/infer", None, 404, "model_name"),
        ("/v2/models/churn/versions/9/infer", None, 404, "model_version"),
        (
            "/v2/models/churn/infer",
            {"inputs": [{"name": "features", "shape": [1, 2], "datatype": "FP32", "data": [1, 2]}]},
            422,
            "inputs[features].shape",
        ),
        (
            "/v2/models/churn/infer",
            {
                "inputs": [
                    {"name": "features", "shape": [1, 3], "datatype": "INT64", "data": [1, 2, 3]}
                ]
            },
            422,
            "inputs[features].datatype",
        ),
        (
            "/v2/models/churn/infer",
            {"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}]},
            422,
            "inputs[features]",
        ),
        (
            "/v2/models/churn/infer",
            {"inputs": [{"name": "features", "shape": [1, 3], "datatype": "FP32", "data": [1, 2]}]},
            422,
            None,
        ),
    ],
)
def test_infer_errors_name_the_problem(
    client, path: str, payload: dict | None, status: int, field: str | None
) -> None:
    payload = payload or {
        "inputs": [{"name": "features", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}]
    }
    r = client.post(path, json=payload)
    assert r.status_code == status, r.text
    body = OIPErrorResponse.model_validate(
        r.json()
    )  # the OIP error body, which tritonclient parses
    assert body.error and body.error_type
    if field is not None:
        assert body.field == field and body.error.startswith(field)


def test_bad_binary_framing_is_400(client) -> None:
    body, headers = _binary_request(np.ones((2, 3), dtype=np.float32))
    headers[HEADER] = "abc"
    assert client.post("/v2/models/churn/infer", content=body, headers=headers).status_code == 400
    headers[HEADER] = str(len(body) + 10)
    assert client.post("/v2/models/churn/infer", content=body, headers=headers).status_code == 400


def test_repository_index_unload_load(client) -> None:
    index = RepositoryIndexResponse.model_validate(
        client.post("/v2/repository/index", json={}).json()
    ).root
    assert {(m.name, m.version, m.state) for m in index} >= {
        ("churn", "1", "READY"),
        ("churn", "2", "READY"),
    }
    unload = client.post("/v2/repository/models/churn/unload")
    assert unload.status_code == 200 and RepositoryModelResponse.model_validate(unload.json())
    unloaded = RepositoryIndexResponse.model_validate(
        client.post("/v2/repository/index").json()
    ).root
    assert {(m.state, m.reason) for m in unloaded if m.name == "churn"} == {
        ("UNAVAILABLE", "unloaded")
    }
    assert client.post("/v2/repository/index", json={"ready": True}).json() == [
        m.model_dump() for m in unloaded if m.state == "READY"
    ]
    assert client.get("/v2/models/churn/ready").status_code == 503
    assert client.get("/v2/health/ready").status_code == 503
    assert client.post("/v2/repository/models/churn/load").status_code == 200
    assert client.get("/v2/models/churn/ready").status_code == 200
    missing = client.post("/v2/repository/models/nope/load")
    assert (
        missing.status_code == 404
        and OIPErrorResponse.model_validate(missing.json()).field == "model_name"
    )
