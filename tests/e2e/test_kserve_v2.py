"""KServe v2 with the reference client, tritonclient.http, unchanged."""

from __future__ import annotations

import numpy as np
import pytest
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def triton(app_url: str) -> httpclient.InferenceServerClient:
    return httpclient.InferenceServerClient(app_url.split("://", 1)[1], network_timeout=60)


def test_health_and_metadata(triton: httpclient.InferenceServerClient) -> None:
    assert triton.is_server_live() and triton.is_server_ready()
    assert triton.get_server_metadata()["name"] == "reengage"
    for model in ("churn", "engagement"):
        meta = triton.get_model_metadata(model)
        assert meta["inputs"][0]["name"] == "features" and meta["inputs"][0]["datatype"] == "FP32"
        assert meta["outputs"][0]["name"] == "probability"
        assert triton.is_model_ready(model)
        version = meta["versions"][-1]
        assert triton.get_model_metadata(model, model_version=version)["name"] == model
        assert triton.is_model_ready(model, model_version=version)


@pytest.mark.parametrize("model", ["churn", "engagement"])
@pytest.mark.parametrize("binary", [True, False])
def test_infer_binary_and_json(
    triton: httpclient.InferenceServerClient, model: str, binary: bool
) -> None:
    meta = triton.get_model_metadata(model)
    n_features = int(meta["inputs"][0]["shape"][1])
    x = np.random.default_rng(1).random((64, n_features), dtype=np.float32) * 10
    inp = httpclient.InferInput("features", list(x.shape), "FP32")
    inp.set_data_from_numpy(x, binary_data=binary)
    out = httpclient.InferRequestedOutput("probability", binary_data=binary)
    result = triton.infer(model, [inp], outputs=[out])
    p = result.as_numpy("probability")
    assert p.shape == (64, 1) and np.all((p >= 0) & (p <= 1))
    again = triton.infer(model, [inp], model_version=meta["versions"][-1]).as_numpy("probability")
    np.testing.assert_array_equal(p, again)


def test_errors_surface_as_client_exceptions(triton: httpclient.InferenceServerClient) -> None:
    x = np.zeros((2, 3), dtype=np.float32)
    inp = httpclient.InferInput("features", list(x.shape), "FP32")
    inp.set_data_from_numpy(x)
    with pytest.raises(InferenceServerException, match="shape"):
        triton.infer("churn", [inp])
    with pytest.raises(InferenceServerException):
        triton.infer("no_such_model", [inp])
    with pytest.raises(InferenceServerException):
        triton.get_model_metadata("churn", model_version="999")


def test_repository_index_lists_versions(
    triton: httpclient.InferenceServerClient, admin_headers: dict[str, str]
) -> None:
    index = triton.get_model_repository_index(headers=admin_headers)  # the admin group: a token
    names = {(m["name"], m["state"]) for m in index}
    assert ("churn", "READY") in names and ("engagement", "READY") in names
