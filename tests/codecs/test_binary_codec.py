"""The binary tensor extension against the real tritonclient: its request builder feeds
our decoder, our encoder feeds its response parser, so ``tritonclient.http`` works
unchanged."""

from __future__ import annotations

import numpy as np
import orjson
import pytest
import tritonclient.http as httpclient

from serving.codecs.binary import (
    HEADER_LENGTH,
    decode_infer_request,
    encode_infer_response,
    validate_inputs,
)
from serving.errors import InvalidRequest, MalformedBody
from serving.protocol.v2 import InferenceRequest, InferenceResponse, MetadataTensor

Client = httpclient.InferenceServerClient
RNG = np.random.default_rng(0)


def infer_input(name: str, array: np.ndarray, binary: bool) -> httpclient.InferInput:
    datatype = "BYTES" if array.dtype == object else httpclient.np_to_triton_dtype(array.dtype)
    return httpclient.InferInput(name, list(array.shape), datatype).set_data_from_numpy(
        array, binary_data=binary
    )


def parse(body: bytes, headers: dict[str, str]) -> httpclient.InferResult:
    length = headers.get(HEADER_LENGTH)
    return Client.parse_response_body(body, header_length=None if length is None else int(length))


ARRAYS = {
    "features": RNG.random((5, 32), dtype=np.float32),
    "ids": np.array([3, 1, 2**40], dtype=np.int64),
    "mask": np.array([[True, False], [False, True]]),
    "half": np.array([0.5, -1.25], dtype=np.float16),
    "small": np.array([250, 0], dtype=np.uint8),
    "words": np.array([[b"hi", b""], ["zß".encode(), b"x"]], dtype=object),
}


@pytest.mark.parametrize("binary", [True, False])
def test_tritonclient_request_decodes(binary: bool) -> None:
    inputs = [infer_input(name, array, binary) for name, array in ARRAYS.items()]
    body, header_length = Client.generate_request_body(inputs, request_id="req-7")
    assert (header_length is None) is (not binary)
    request, arrays = decode_infer_request(body, header_length)
    assert request.id == "req-7" and list(arrays) == list(ARRAYS)
    for name, expected in ARRAYS.items():
        assert arrays[name].dtype == expected.dtype and arrays[name].shape == expected.shape, name
        assert arrays[name].tolist() == expected.tolist(), name


def test_binary_inputs_are_views_on_the_body() -> None:
    body, header_length = Client.generate_request_body(
        [infer_input("features", ARRAYS["features"], True)]
    )
    _, arrays = decode_infer_request(body, header_length)
    assert not arrays["features"].flags.owndata and not arrays["features"].flags.writeable


def test_mixed_binary_and_json_inputs() -> None:
    inputs = [
        infer_input("features", ARRAYS["features"], True),
        infer_input("ids", ARRAYS["ids"], False),
        infer_input("words", ARRAYS["words"], True),
    ]
    body, header_length = Client.generate_request_body(inputs)
    _, arrays = decode_infer_request(body, header_length)
    np.testing.assert_array_equal(arrays["features"], ARRAYS["features"])
    np.testing.assert_array_equal(arrays["ids"], ARRAYS["ids"])
    assert arrays["words"].tolist() == ARRAYS["words"].tolist()


def roundtrip(
    outputs: list[httpclient.InferRequestedOutput] | None,
) -> tuple[httpclient.InferResult, dict[str, str]]:
    body, header_length = Client.generate_request_body(
        [infer_input("ids", ARRAYS["ids"], True)], outputs=outputs, request_id="r1"
    )
    request, _ = decode_infer_request(body, header_length)
    meta = InferenceResponse(model_name="churn", model_version="3")
    out_body, headers = encode_infer_response(meta, ARRAYS, request)
    return parse(out_body, headers), headers


def test_no_outputs_named_returns_all_binary() -> None:
    result, headers = roundtrip(None)
    assert headers["Content-Type"] == "application/octet-stream"
    response = result.get_response()
    assert (response["model_name"], response["model_version"], response["id"]) == (
        "churn",
        "3",
        "r1",
    )
    assert [o["name"] for o in response["outputs"]] == list(ARRAYS)
    for name, expected in ARRAYS.items():
        assert "data" not in result.get_output(name)
        got = result.as_numpy(name)
        assert got.shape == expected.shape and got.tolist() == expected.tolist(), name


def test_requested_outputs_choose_subset_order_and_form() -> None:
    outputs = [
        httpclient.InferRequestedOutput("words", binary_data=False),
        httpclient.InferRequestedOutput("features", binary_data=True),
        httpclient.InferRequestedOutput("mask", binary_data=False),
    ]
    result, headers = roundtrip(outputs)
    response = result.get_response()
    assert [o["name"] for o in response["outputs"]] == ["words", "features", "mask"]
    assert result.get_output("words")["data"] == ["hi", "", "zß", "x"]
    assert "data" not in result.get_output("features")
    np.testing.assert_array_equal(result.as_numpy("features"), ARRAYS["features"])
    np.testing.assert_array_equal(result.as_numpy("mask"), ARRAYS["mask"])
    assert result.as_numpy("ids") is None
    assert int(headers[HEADER_LENGTH]) == len(orjson.dumps(response))


def test_json_only_response_has_no_header_length() -> None:
    outputs = [
        httpclient.InferRequestedOutput(n, binary_data=False) for n in ("features", "half", "small")
    ]
    result, headers = roundtrip(outputs)
    assert headers == {"Content-Type": "application/json"}
    for name in ("features", "half", "small"):
        got = result.as_numpy(name)
        assert got.dtype == ARRAYS[name].dtype
        np.testing.assert_array_equal(got, ARRAYS[name])  # float32 survives JSON exactly


def test_plain_json_request_without_parameters_answers_json() -> None:
    body = orjson.dumps(
        {"inputs": [{"name": "ids", "shape": [2], "datatype": "INT64", "data": [1, 2]}]}
    )
    request, arrays = decode_infer_request(body, None)
    out, headers = encode_infer_response(
        InferenceResponse(model_name="m"), {"y": arrays["ids"] * 2}, request
    )
    assert headers == {"Content-Type": "application/json"}
    assert orjson.loads(out) == {
        "model_name": "m",
        "outputs": [{"name": "y", "datatype": "INT64", "shape": [2], "data": [2, 4]}],
    }


def test_unknown_requested_output_is_named() -> None:
    with pytest.raises(InvalidRequest) as info:
        roundtrip([httpclient.InferRequestedOutput("nope")])
    assert info.value.field == "outputs[nope]"


def binary_body() -> tuple[bytes, int]:
    body, header_length = Client.generate_request_body(
        [infer_input("features", ARRAYS["features"], True)]
    )
    return body, header_length


@pytest.mark.parametrize(
    ("mutate", "error", "field"),
    [
        (lambda b, n: (b, n + 5), MalformedBody, None),  # header length cuts into the JSON tail
        (lambda b, n: (b, len(b) + 1), MalformedBody, HEADER_LENGTH),
        (lambda b, n: (b, 0), MalformedBody, HEADER_LENGTH),
        (lambda b, n: (b[:-4], n), MalformedBody, "inputs[features].parameters.binary_data_size"),
        (lambda b, n: (b + b"\0" * 4, n), MalformedBody, HEADER_LENGTH),
        (lambda b, n: (b, None), MalformedBody, None),  # binary tail without the header: not JSON
        (lambda b, n: (b"[1, 2]", None), InvalidRequest, None),
    ],
)
def test_bad_framing(mutate, error: type[Exception], field: str | None) -> None:
    body, length = mutate(*binary_body())
    with pytest.raises(error) as info:
        decode_infer_request(body, length)
    if field is not None:
        assert info.value.field == field


def header_only(doc: dict, tail: bytes = b"") -> tuple[bytes, int | None]:
    head = orjson.dumps(doc)
    return head + tail, (len(head) if tail else None)


@pytest.mark.parametrize(
    ("doc", "tail", "field"),
    [
        (
            {"inputs": [{"name": "x", "shape": [2], "datatype": "FP33", "data": [1, 2]}]},
            b"",
            "inputs[x].datatype",
        ),
        ({"inputs": [{"name": "x", "shape": [2], "datatype": "FP32"}]}, b"", "inputs[x].data"),
        ({"inputs": [{"name": "x", "datatype": "FP32", "data": [1]}]}, b"", "inputs[x].shape"),
        ({"inputs": "x"}, b"", "inputs"),
        (
            {
                "inputs": [
                    {
                        "name": "x",
                        "shape": [3],
                        "datatype": "FP32",
                        "parameters": {"binary_data_size": 8},
                    }
                ]
            },
            b"\0" * 8,
            "inputs[x].parameters.binary_data_size",
        ),
        (
            {
                "inputs": [
                    {
                        "name": "x",
                        "shape": [2],
                        "datatype": "BYTES",
                        "parameters": {"binary_data_size": 8},
                    }
                ]
            },
            b"\x01\0\0\0a\x09\0\0",
            "inputs[x]",
        ),
        (
            {
                "inputs": [
                    {
                        "name": "x",
                        "shape": [10**12],
                        "datatype": "BYTES",
                        "parameters": {"binary_data_size": 5},
                    }
                ]
            },
            b"\x01\0\0\0a",
            "inputs[x]",
        ),
        (
            {
                "inputs": [
                    {"name": "x", "shape": [1], "datatype": "FP32", "data": [1]},
                    {"name": "x", "shape": [1], "datatype": "FP32", "data": [2]},
                ]
            },
            b"",
            "inputs[x]",
        ),
        (
            {
                "inputs": [
                    {
                        "name": "x",
                        "shape": [1],
                        "datatype": "FP32",
                        "data": [1],
                        "parameters": {"binary_data_size": 4},
                    }
                ]
            },
            b"\0" * 4,
            "inputs[x]",
        ),
    ],
)
def test_bad_requests_name_the_field(doc: dict, tail: bytes, field: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        decode_infer_request(*header_only(doc, tail))
    assert info.value.field == field


def test_binary_size_without_header_length() -> None:
    doc = {
        "inputs": [
            {"name": "x", "shape": [1], "datatype": "FP32", "parameters": {"binary_data_size": 4}}
        ]
    }
    with pytest.raises(MalformedBody):
        decode_infer_request(orjson.dumps(doc), None)


SPEC = [
    MetadataTensor(name="features", datatype="FP32", shape=[-1, 32]),
    MetadataTensor(name="ids", datatype="INT64", shape=[-1]),
]


def test_validate_inputs_accepts_variable_batch() -> None:
    validate_inputs({"features": np.zeros((7, 32), np.float32), "ids": np.zeros(7, np.int64)}, SPEC)
    validate_inputs({"features": np.zeros((0, 32), np.float32), "ids": np.zeros(0, np.int64)}, SPEC)


@pytest.mark.parametrize(
    ("arrays", "field"),
    [
        ({"features": np.zeros((1, 32), np.float32)}, "inputs[ids]"),
        (
            {
                "features": np.zeros((1, 32), np.float32),
                "ids": np.zeros(1, np.int64),
                "x": np.zeros(1),
            },
            "inputs[x]",
        ),
        (
            {"features": np.zeros((1, 32), np.float64), "ids": np.zeros(1, np.int64)},
            "inputs[features].datatype",
        ),
        (
            {"features": np.zeros((1, 31), np.float32), "ids": np.zeros(1, np.int64)},
            "inputs[features].shape",
        ),
        (
            {"features": np.zeros(32, np.float32), "ids": np.zeros(1, np.int64)},
            "inputs[features].shape",
        ),
        (
            {"features": np.zeros((1, 32), np.float32), "ids": np.zeros((1, 1), np.int64)},
            "inputs[ids].shape",
        ),
    ],
)
def test_validate_inputs_rejects(arrays: dict[str, np.ndarray], field: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        validate_inputs(arrays, SPEC)
    assert info.value.field == field


def test_request_level_binary_output_flag_without_outputs() -> None:
    request = InferenceRequest.model_validate(
        {"inputs": [], "parameters": {"binary_data_output": False}}
    )
    _, headers = encode_infer_response(
        InferenceResponse(model_name="m"), {"y": np.ones(2, np.float32)}, request
    )
    assert HEADER_LENGTH not in headers
