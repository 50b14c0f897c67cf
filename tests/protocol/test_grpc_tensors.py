"""KServe v2 gRPC tensors: typed ``contents`` and ``raw_input_contents`` decode alike.

``serving.routes.grpc.decode_inputs`` on the messages ``tritonclient.grpc`` builds (and
the typed-contents form other KServe clients send); end to end in tests/e2e/test_kserve_grpc.py.
"""

from __future__ import annotations

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from tritonclient.grpc import service_pb2

from serving.errors import InvalidRequest
from serving.routes.grpc import decode_inputs

CASES = [
    ("FP32", "fp32_contents", np.array([[0.5, -1.25], [3.0, 1e-3]], np.float32)),
    ("FP64", "fp64_contents", np.array([1.5, -2.0, 1e300])),
    ("INT64", "int64_contents", np.array([[2**40, -7]], np.int64)),
    ("INT32", "int_contents", np.array([-(2**31), 5], np.int32)),
    ("INT8", "int_contents", np.array([-128, 127], np.int8)),
    ("UINT16", "uint_contents", np.array([0, 65535], np.uint16)),
    ("UINT64", "uint64_contents", np.array([2**64 - 1], np.uint64)),
    ("BOOL", "bool_contents", np.array([True, False, True])),
]


def _typed(
    name: str, datatype: str, shape: list[int], field: str, values: list
) -> service_pb2.ModelInferRequest:
    request = service_pb2.ModelInferRequest(model_name="m")
    tensor = request.inputs.add(name=name, datatype=datatype, shape=shape)
    getattr(tensor.contents, field).extend(values)
    return request


@pytest.mark.parametrize("datatype,field,x", CASES, ids=[c[0] for c in CASES])
def test_typed_contents_equal_the_raw_form(datatype: str, field: str, x: np.ndarray) -> None:
    typed = decode_inputs(_typed("x", datatype, list(x.shape), field, x.ravel().tolist()))["x"]
    inp = grpcclient.InferInput("x", list(x.shape), datatype)
    inp.set_data_from_numpy(x)
    raw_request = service_pb2.ModelInferRequest(
        model_name="m", inputs=[inp._get_tensor()], raw_input_contents=[inp._get_content()]
    )
    raw = decode_inputs(raw_request)["x"]
    assert typed.dtype == raw.dtype == x.dtype and typed.shape == x.shape
    np.testing.assert_array_equal(typed, x)
    np.testing.assert_array_equal(raw, x)


def test_typed_bytes() -> None:
    out = decode_inputs(_typed("s", "BYTES", [1, 2], "bytes_contents", [b"a", b"\x00bc"]))["s"]
    assert out.shape == (1, 2) and out.tolist() == [[b"a", b"\x00bc"]]


@pytest.mark.parametrize(
    "datatype,field,values,shape,where",
    [
        ("FP32", "fp32_contents", [1.0, 2.0], [3], "inputs[x].contents"),  # count != shape
        (
            "FP32",
            "int64_contents",
            [1, 2, 3],
            [3],
            "inputs[x].contents",
        ),  # the wrong field for the datatype
        ("INT8", "int_contents", [1, 300], [2], "inputs[x].contents"),  # outside INT8
        ("UINT8", "uint_contents", [256], [1], "inputs[x].contents"),
        ("FP16", "fp32_contents", [1.0], [1], "inputs[x].contents"),  # FP16 travels raw only
        ("FLOAT", "fp32_contents", [1.0], [1], "inputs[x].datatype"),
    ],
)
def test_bad_typed_contents_name_the_input(
    datatype: str, field: str, values: list, shape: list[int], where: str
) -> None:
    with pytest.raises(InvalidRequest) as exc:
        decode_inputs(_typed("x", datatype, shape, field, values))
    assert exc.value.field == where


def test_raw_and_typed_together_are_rejected() -> None:
    request = _typed("x", "FP32", [1], "fp32_contents", [1.0])
    request.raw_input_contents.append(np.float32(1).tobytes())
    with pytest.raises(InvalidRequest) as exc:
        decode_inputs(request)
    assert exc.value.field == "inputs[x].contents"


def test_bad_raw_bytes_tensor_is_the_callers_mistake() -> None:
    request = service_pb2.ModelInferRequest(model_name="m")
    request.inputs.add(name="s", datatype="BYTES", shape=[2])
    request.raw_input_contents.append(b"\x05\x00\x00\x00ab")  # claims 5 bytes, has 2
    with pytest.raises(InvalidRequest) as exc:
        decode_inputs(request)
    assert exc.value.field == "inputs[s]"
