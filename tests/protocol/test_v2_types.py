"""OIP wire types: what tritonclient sends parses, what we send has the spec's keys."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import tritonclient.http as httpclient
from pydantic import ValidationError

from serving.errors import InvalidRequest, error_body
from serving.protocol.v2 import (
    Datatype,
    ErrorResponse,
    InferenceRequest,
    InferenceResponse,
    MetadataTensor,
    ModelMetadataResponse,
    ModelState,
    RepositoryIndexRequest,
    RepositoryIndexResponse,
    RepositoryIndexResponseItem,
    RepositoryLoadRequest,
    RepositoryUnloadRequest,
)


def test_tritonclient_request_header_parses() -> None:
    x = httpclient.InferInput("features", [2, 3], "FP32").set_data_from_numpy(np.ones((2, 3), np.float32))
    out = httpclient.InferRequestedOutput("probability", binary_data=False)
    body, length = httpclient.InferenceServerClient.generate_request_body(
        [x], outputs=[out], request_id="abc", parameters={"tenant": "t1"})
    request = InferenceRequest.model_validate_json(body[:length])
    assert request.id == "abc"
    assert request.inputs[0].datatype is Datatype.FP32 and request.inputs[0].parameters.binary_data_size == 24
    assert request.outputs[0].parameters.binary_data is False
    assert request.parameters.model_extra == {"tenant": "t1"}


def test_unknown_datatype_is_rejected() -> None:
    with pytest.raises(ValidationError):
        InferenceRequest.model_validate({"inputs": [{"name": "x", "shape": [1], "datatype": "FLOAT", "data": [1]}]})


def test_model_fields_raise_no_namespace_warning() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        response = InferenceResponse(model_name="churn", model_version="3")
    assert response.model_dump(exclude_none=True) == {"model_name": "churn", "model_version": "3", "outputs": []}


def test_model_metadata_wire_form() -> None:
    meta = ModelMetadataResponse(
        name="churn", versions=["1", "3"], platform="onnxruntime_onnx",
        inputs=[MetadataTensor(name="features", datatype="FP32", shape=[-1, 32])],
        outputs=[MetadataTensor(name="probability", datatype=Datatype.FP32, shape=[-1])],
    )
    wire = json.loads(meta.model_dump_json(exclude_none=True))
    assert wire == {
        "name": "churn", "versions": ["1", "3"], "platform": "onnxruntime_onnx",
        "inputs": [{"name": "features", "datatype": "FP32", "shape": [-1, 32]}],
        "outputs": [{"name": "probability", "datatype": "FP32", "shape": [-1]}],
    }


def test_repository_types() -> None:
    assert RepositoryIndexRequest.model_validate({}).ready is None
    index = RepositoryIndexResponse(models=[
        RepositoryIndexResponseItem(name="churn", version="3", state=ModelState.READY),
        RepositoryIndexResponseItem(name="engagement", version="1", state="UNAVAILABLE", reason="unloaded"),
    ])
    assert index.to_wire() == [
        {"name": "churn", "version": "3", "state": "READY", "reason": ""},
        {"name": "engagement", "version": "1", "state": "UNAVAILABLE", "reason": "unloaded"},
    ]
    # bodies exactly as tritonclient's load_model / unload_model write them
    load = RepositoryLoadRequest.model_validate({"parameters": {"config": "{}", "file:1/model.onnx": "AAEC"}})
    assert load.parameters.model_extra["file:1/model.onnx"] == "AAEC"
    unload = RepositoryUnloadRequest.model_validate({"parameters": {"unload_dependents": False}})
    assert unload.parameters.model_extra == {"unload_dependents": False}


def test_error_body_matches_the_error_tree() -> None:
    exc = InvalidRequest("bad", "inputs[x].data")
    assert ErrorResponse.model_validate(exc.to_body()).model_dump() == exc.to_body()
    assert ErrorResponse.model_validate(error_body("not_found", "gone")).error.field is None
