"""JSON tensors <-> numpy: dtype tables, shapes checked (never reshaped), errors name the input."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import orjson
import pytest

from serving.codecs.tensors import (
    DATATYPE_TO_DTYPE,
    datatype_of,
    deserialize_bytes_tensor,
    from_ndarray,
    numpy_dtype,
    serialize_bytes_tensor,
    to_ndarray,
)
from serving.errors import InvalidRequest
from serving.protocol.v2 import Datatype, RequestInput
from tritonclient.utils import deserialize_bytes_tensor as triton_deserialize
from tritonclient.utils import np_to_triton_dtype, serialize_byte_tensor, triton_to_np_dtype


def tensor(datatype: str, shape: list[int], data: object, name: str = "features") -> RequestInput:
    return RequestInput(name=name, datatype=datatype, shape=shape, data=data)


@pytest.mark.parametrize("datatype", [d for d in Datatype])
def test_dtype_table_agrees_with_tritonclient(datatype: Datatype) -> None:
    dtype = numpy_dtype(datatype)
    assert np.dtype(triton_to_np_dtype(datatype.value)) == dtype
    assert np_to_triton_dtype(dtype) == datatype.value
    assert datatype_of(dtype) is datatype


def test_every_datatype_has_a_dtype() -> None:
    assert set(DATATYPE_TO_DTYPE) == set(Datatype)
    assert (
        datatype_of(np.dtype("U3")) is Datatype.BYTES
        and datatype_of(np.dtype("S3")) is Datatype.BYTES
    )
    with pytest.raises(TypeError):
        datatype_of(np.dtype(np.complex64))


def test_flat_and_nested_data_give_the_same_array() -> None:
    flat = to_ndarray(tensor("FP32", [2, 3], [1, 2, 3, 4, 5, 6.5]))
    nested = to_ndarray(tensor("FP32", [2, 3], [[1, 2, 3], [4, 5, 6.5]]))
    assert flat.dtype == np.float32 and flat.shape == (2, 3)
    np.testing.assert_array_equal(flat, nested)
    np.testing.assert_array_equal(flat[1], [4, 5, 6.5])


@pytest.mark.parametrize(
    ("datatype", "data", "expected"),
    [
        ("BOOL", [True, False], np.array([True, False])),
        ("UINT8", [0, 255], np.array([0, 255], np.uint8)),
        ("INT8", [-128, 127], np.array([-128, 127], np.int8)),
        ("INT64", [2**62, -1], np.array([2**62, -1], np.int64)),
        ("UINT64", [2**64 - 1, 0], np.array([2**64 - 1, 0], np.uint64)),
        ("FP16", [0.5, 1], np.array([0.5, 1], np.float16)),
        ("FP64", [0.1, 2], np.array([0.1, 2], np.float64)),
        ("BYTES", ["a", "ü"], np.array([b"a", "ü".encode()], dtype=object)),
    ],
)
def test_datatypes_decode(datatype: str, data: list, expected: np.ndarray) -> None:
    got = to_ndarray(tensor(datatype, [2], data))
    assert got.dtype == expected.dtype
    assert got.tolist() == expected.tolist()


def test_bf16_decodes_through_ml_dtypes() -> None:
    got = to_ndarray(tensor("BF16", [2], [1.5, -2]))
    assert got.dtype == np.dtype(ml_dtypes.bfloat16)
    assert got.astype(np.float32).tolist() == [1.5, -2.0]


def test_empty_tensor() -> None:
    got = to_ndarray(tensor("INT32", [0, 4], []))
    assert got.shape == (0, 4) and got.dtype == np.int32


@pytest.mark.parametrize(
    ("datatype", "shape", "data", "needle"),
    [
        ("FP32", [2, 3], [1, 2, 3, 4, 5], "needs 6 elements, got 5"),
        ("FP32", [4], [[1, 2], [3, 4]], "nested data has shape [2, 2]"),
        ("FP32", [2, 2], [[1, 2], [3]], "not a rectangular array"),
        ("FP32", [2], ["a", "b"], "got strings"),
        ("FP32", [2], [1.0, None], "mixed values or nulls"),
        ("INT32", [2], [1.5, 2], "numbers with fractions"),
        ("INT64", [1], [True], "got booleans"),
        ("UINT8", [2], [1, 256], "outside the UINT8 range"),
        ("UINT32", [1], [-1], "outside the UINT32 range"),
        ("BOOL", [1], [1], "got integers"),
        ("BYTES", [2], [1, 2], "must be strings"),
        ("UINT64", [2], [2**64 - 1, 1.5], "non-integers"),
        ("INT64", [2], [2**63, None], "non-integers"),
        ("INT64", [2], [2**64, 1], "outside the INT64 range"),
        ("UINT64", [2], [2**64, 1], "outside the UINT64 range"),
        ("FP32", [2], None, "no data"),
    ],
)
def test_bad_data_is_rejected_naming_the_input(
    datatype: str, shape: list[int], data: object, needle: str
) -> None:
    with pytest.raises(InvalidRequest) as info:
        to_ndarray(tensor(datatype, shape, data))
    assert info.value.field == "inputs[features].data"
    assert needle in info.value.message


def test_negative_dimension_is_rejected() -> None:
    with pytest.raises(InvalidRequest) as info:
        to_ndarray(tensor("FP32", [-1, 2], [1, 2]))
    assert info.value.field == "inputs[features].shape"


def test_from_ndarray_json_keeps_the_array_for_orjson() -> None:
    array = np.arange(6, dtype=np.float32).reshape(2, 3) / 3
    header, raw = from_ndarray("p", array.T)  # non-contiguous on purpose
    assert raw is None and header["shape"] == [3, 2] and header["datatype"] == "FP32"
    assert isinstance(header["data"], np.ndarray)
    decoded = orjson.loads(orjson.dumps(header, option=orjson.OPT_SERIALIZE_NUMPY))
    np.testing.assert_array_equal(np.array(decoded["data"], np.float32).reshape(3, 2), array.T)


def test_from_ndarray_binary_matches_raw_bytes() -> None:
    array = np.array([[1, -2], [3, 4]], dtype=np.int16)
    header, raw = from_ndarray("out", array, binary=True)
    assert "data" not in header
    assert bytes(raw) == array.tobytes()
    assert header["parameters"] == {"binary_data_size": 8}


def test_bytes_outputs() -> None:
    words = np.array([b"hi", "é".encode()], dtype=object)
    header, _ = from_ndarray("w", words)
    assert header["data"] == ["hi", "é"]
    with pytest.raises(InvalidRequest) as info:
        from_ndarray("w", np.array([b"\xff"], dtype=object))
    assert info.value.field == "outputs[w]"


def test_bytes_framing_matches_tritonclient() -> None:
    words = np.array([b"", b"abc", "zß".encode(), b"\x00\x01"], dtype=object)
    wire = serialize_bytes_tensor(words)
    assert wire == serialize_byte_tensor(words).item()
    assert triton_deserialize(wire).tolist() == words.tolist()
    assert deserialize_bytes_tensor(wire, 4).tolist() == words.tolist()


@pytest.mark.parametrize(("count", "cut"), [(4, 3), (5, 0), (3, 0)])
def test_bytes_framing_errors(count: int, cut: int) -> None:
    wire = serialize_bytes_tensor(np.array([b"a", b"bb", b"ccc", b""], dtype=object))
    with pytest.raises(ValueError):
        deserialize_bytes_tensor(wire[: len(wire) - cut], count)
