"""OIP wire types: what tritonclient sends parses, what we send has the spec's keys."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import tritonclient.http as httpclient
from pydantic import ValidationError

from serving.protocol.v2 import (
    Datatype,
    InferenceRequest,
    InferenceResponse,
    MetadataTensor,
    ModelMetadataResponse,
    ModelParameters,
    OIPErrorResponse,
    RepositoryIndexRequest,
    RepositoryIndexResponse,
)


def test_tritonclient_request_header_parses() -> None:
    x = httpclient.InferInput("features", [2, 3], "FP32").set_data_from_numpy(
        np.ones((2, 3), np.float32)
    )
    out = httpclient.InferRequestedOutput("probability", binary_data=False)
    body, length = httpclient.InferenceServerClient.generate_request_body(
        [x], outputs=[out], request_id="abc", parameters={"tenant": "t1"}
    )
    request = InferenceRequest.model_validate_json(body[:length])
    assert request.id == "abc"
    assert (
        request.inputs[0].datatype is Datatype.FP32
        and request.inputs[0].parameters.binary_data_size == 24
    )
    assert request.outputs[0].parameters.binary_data is False
    assert request.parameters.model_extra == {"tenant": "t1"}


def test_unknown_datatype_is_rejected() -> None:
    with pytest.raises(ValidationError):
        InferenceRequest.model_validate(
            {"inputs": [{"name": "x", "shape": [1], "datatype": "FLOAT", "data": [1]}]}
        )


def test_model_fields_raise_no_namespace_warning() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        response = InferenceResponse(model_name="churn", model_version="3")
    assert response.model_dump(exclude_none=True) == {
        "model_name": "churn",
        "model_version": "3",
        "outputs": [],
    }


def test_model_metadata_wire_form() -> None:
    meta = ModelMetadataResponse(
        name="churn",
        versions=["1", "3"],
        platform="onnxruntime_onnx",
        inputs=[MetadataTensor(name="features", datatype="FP32", shape=[-1, 32])],
        outputs=[MetadataTensor(name="probability", datatype=Datatype.FP32, shape=[-1])],
        parameters=ModelParameters(
            features=["a", "b"], version="3", feature_service="churn_service"
        ),
    )
    wire = json.loads(meta.model_dump_json())
    assert wire == {
        "name": "churn",
        "versions": ["1", "3"],
        "platform": "onnxruntime_onnx",
        "inputs": [{"name": "features", "datatype": "FP32", "shape": [-1, 32]}],
        "outputs": [{"name": "probability", "datatype": "FP32", "shape": [-1]}],
        "parameters": {"features": ["a", "b"], "version": "3", "feature_service": "churn_service"},
    }
    with pytest.raises(ValidationError):  # answers are exact: an unknown key is a schema break
        ModelMetadataResponse.model_validate({**wire, "extra": 1})


def test_repository_types() -> None:
    assert RepositoryIndexRequest.model_validate({}).ready is None
    rows = [
        {"name": "churn", "version": "3", "state": "READY", "reason": ""},
        {"name": "engagement", "version": "1", "state": "UNAVAILABLE", "reason": "unloaded"},
    ]
    assert (
        RepositoryIndexResponse.model_validate(rows).model_dump() == rows
    )  # the body is the bare list
    with pytest.raises(ValidationError):
        RepositoryIndexResponse.model_validate([{**rows[0], "state": "LOADING"}])  # never sent


def test_oip_error_body_has_a_string_error() -> None:
    body = {
        "error": "inputs[x].data: bad",
        "error_type": "invalid_request",
        "field": "inputs[x].data",
    }
    assert OIPErrorResponse.model_validate(body).model_dump() == body
    with pytest.raises(ValidationError):  # the v1 form (an object under "error") is not the OIP's
        OIPErrorResponse.model_validate(
            {"error": {"type": "invalid_request", "message": "bad", "field": None}}
        )
