"""Tensors between the Open Inference Protocol and numpy.

Dtype tables as in MLServer's ``codecs/numpy.py``; JSON ``data`` (flat or nested,
row-major) becomes one ndarray through numpy's C converters, never element by element
in Python, except BYTES, whose elements are Python objects by nature. Every caller
mistake is an ``InvalidRequest`` naming the input (``inputs[<name>].data``); shapes
are checked, never silently changed.
"""

from __future__ import annotations

import math
import struct
from typing import Any

import numpy as np

from serving.errors import InvalidRequest
from serving.protocol.v2 import Datatype, RequestInput

try:  # BF16 has no numpy dtype; tritonclient (a dependency) brings ml_dtypes
    from ml_dtypes import bfloat16 as _bfloat16
except ImportError:  # pragma: no cover - ml_dtypes comes with tritonclient
    _bfloat16 = None

# Wire byte order of the binary extension is little-endian.
DATATYPE_TO_DTYPE: dict[Datatype, np.dtype] = {
    Datatype.BOOL: np.dtype(np.bool_),
    Datatype.UINT8: np.dtype("<u1"),
    Datatype.UINT16: np.dtype("<u2"),
    Datatype.UINT32: np.dtype("<u4"),
    Datatype.UINT64: np.dtype("<u8"),
    Datatype.INT8: np.dtype("<i1"),
    Datatype.INT16: np.dtype("<i2"),
    Datatype.INT32: np.dtype("<i4"),
    Datatype.INT64: np.dtype("<i8"),
    Datatype.FP16: np.dtype("<f2"),
    Datatype.FP32: np.dtype("<f4"),
    Datatype.FP64: np.dtype("<f8"),
    Datatype.BYTES: np.dtype(object),
}
if _bfloat16 is not None:
    DATATYPE_TO_DTYPE[Datatype.BF16] = np.dtype(_bfloat16)

_KIND_SIZE_TO_DATATYPE: dict[tuple[str, int], Datatype] = {
    (dt.kind, dt.itemsize): name for name, dt in DATATYPE_TO_DTYPE.items() if dt.kind in "biuf"
}

# numpy kinds a JSON list may arrive as, per datatype ("b" bool, "i"/"u" int, "f" float)
_JSON_KINDS: dict[str, str] = {"b": "b", "i": "iu", "u": "iu", "f": "iuf", "V": "iuf"}


def numpy_dtype(datatype: Datatype | str) -> np.dtype:
    """The numpy dtype of a v2 datatype (little-endian)."""
    dt = Datatype(datatype)
    if dt not in DATATYPE_TO_DTYPE:
        raise InvalidRequest(f"datatype {dt.value} is not supported here")
    return DATATYPE_TO_DTYPE[dt]


def datatype_of(dtype: np.dtype) -> Datatype:
    """The v2 datatype of a numpy dtype; object, bytes and str arrays are BYTES."""
    dtype = np.dtype(dtype)
    if dtype.kind in "OSU":
        return Datatype.BYTES
    if _bfloat16 is not None and dtype == np.dtype(_bfloat16):
        return Datatype.BF16
    found = _KIND_SIZE_TO_DATATYPE.get((dtype.kind, dtype.itemsize))
    if found is None:
        raise TypeError(f"numpy dtype {dtype} has no v2 datatype")
    return found


def element_count(shape: list[int] | tuple[int, ...]) -> int:
    return math.prod(shape)


def check_shape(shape: list[int], field: str) -> None:
    if any(d < 0 for d in shape):
        raise InvalidRequest(f"dimensions must be >= 0, got {list(shape)}", field)


def to_ndarray(tensor: RequestInput) -> np.ndarray:
    """The JSON ``data`` of one input as an ndarray of its declared shape and dtype.

    Accepts flat row-major data of exactly prod(shape) elements, or nested data whose
    nesting is the declared shape; anything else is rejected, not reshaped.
    """
    field = f"inputs[{tensor.name}].data"
    check_shape(tensor.shape, f"inputs[{tensor.name}].shape")
    if tensor.data is None:
        raise InvalidRequest("no data: give JSON data or parameters.binary_data_size", field)
    dtype = numpy_dtype(tensor.datatype)
    try:
        raw = np.asarray(tensor.data)
    except (ValueError, TypeError) as exc:
        raise InvalidRequest(f"data is not a rectangular array: {exc}", field) from None
    raw = _conform_shape(raw, tensor.shape, field)
    if tensor.datatype is Datatype.BYTES:
        return _strings_to_bytes(raw, field)
    if (dtype == np.uint64 and raw.dtype.kind == "f") or (
        dtype.kind in "iu" and raw.dtype.kind == "O"
    ):
        raw = _exact_ints(tensor.data, tensor.shape, dtype, field)
    return _cast_checked(raw, dtype, tensor.datatype, field)


def _exact_ints(data: Any, shape: list[int], dtype: np.dtype, field: str) -> np.ndarray:
    """numpy reads ints beyond int64 as float64 (mixed with small ones: precision lost)
    or objects; re-read them exactly. Only this rare path looks at elements one by one."""
    objs = _conform_shape(np.asarray(data, dtype=object), shape, field)
    items = objs.reshape(-1).tolist()
    name = datatype_of(dtype).value
    if not all(type(v) is int for v in items):
        raise InvalidRequest(f"{name} tensor got non-integers or nulls", field)
    info = np.iinfo(dtype)
    if min(items) < info.min or max(items) > info.max:
        raise InvalidRequest(f"values outside the {name} range [{info.min}, {info.max}]", field)
    return np.array(items, dtype=dtype).reshape(objs.shape)


def _conform_shape(raw: np.ndarray, shape: list[int], field: str) -> np.ndarray:
    want = tuple(shape)
    if raw.shape == want:
        return raw
    if raw.ndim == 1 and raw.size == element_count(want):
        return raw.reshape(want)  # the spec's flat row-major form
    if raw.ndim <= 1:
        raise InvalidRequest(
            f"shape {list(want)} needs {element_count(want)} elements, got {raw.size}", field
        )
    raise InvalidRequest(
        f"nested data has shape {list(raw.shape)}, declared shape is {list(want)}", field
    )


def _cast_checked(raw: np.ndarray, dtype: np.dtype, datatype: Datatype, field: str) -> np.ndarray:
    if raw.size == 0:
        return np.empty(raw.shape, dtype=dtype)
    allowed = _JSON_KINDS[dtype.kind]
    if raw.dtype.kind not in allowed:
        got = {
            "b": "booleans",
            "i": "integers",
            "u": "integers",
            "f": "numbers with fractions",
            "U": "strings",
            "O": "mixed values or nulls",
        }.get(raw.dtype.kind, str(raw.dtype))
        raise InvalidRequest(f"{datatype.value} tensor got {got}", field)
    if dtype.kind in "iu" and raw.dtype != dtype:
        info = np.iinfo(dtype)
        lo, hi = raw.min(), raw.max()
        if lo < info.min or hi > info.max:
            raise InvalidRequest(
                f"values outside the {datatype.value} range [{info.min}, {info.max}]", field
            )
    return raw.astype(dtype, copy=False)


def _strings_to_bytes(raw: np.ndarray, field: str) -> np.ndarray:
    if raw.size and raw.dtype.kind != "U":
        raise InvalidRequest(
            "BYTES data in JSON must be strings (use binary data for raw bytes)", field
        )
    out = np.empty(raw.shape, dtype=object)
    out.reshape(-1)[:] = [s.encode("utf-8") for s in raw.reshape(-1).tolist()]
    return out


def from_ndarray(
    name: str, array: np.ndarray, binary: bool = False
) -> tuple[dict[str, Any], bytes | memoryview | None]:
    """One output's JSON header and, when ``binary``, its raw bytes.

    JSON data is the flat contiguous ndarray itself (serialise with
    ``orjson.OPT_SERIALIZE_NUMPY``, no ``tolist()``); BYTES become str (UTF-8).
    """
    array = np.asarray(array)
    datatype = datatype_of(array.dtype)
    header: dict[str, Any] = {"name": name, "datatype": datatype.value, "shape": list(array.shape)}
    if binary:
        raw = (
            serialize_bytes_tensor(array)
            if datatype is Datatype.BYTES
            else _raw_view(array, datatype)
        )
        header["parameters"] = {
            "binary_data_size": len(raw) if isinstance(raw, bytes) else raw.nbytes
        }
        return header, raw
    header["data"] = _json_data(name, array, datatype)
    return header, None


def _raw_view(array: np.ndarray, datatype: Datatype) -> memoryview:
    wire = np.ascontiguousarray(array, dtype=DATATYPE_TO_DTYPE[datatype])
    return wire.reshape(-1).view(np.uint8).data


def _json_data(name: str, array: np.ndarray, datatype: Datatype) -> Any:
    if datatype is Datatype.BYTES:
        try:
            return [
                v.decode("utf-8") if isinstance(v, bytes) else str(v)
                for v in array.reshape(-1).tolist()
            ]
        except UnicodeDecodeError:
            raise InvalidRequest(
                "output is not UTF-8: request it as binary data", f"outputs[{name}]"
            ) from None
    if datatype is Datatype.BF16:
        array = array.astype(np.float32)
    # orjson needs native byte order and C order
    return np.ascontiguousarray(array.reshape(-1), dtype=array.dtype.newbyteorder("="))


def serialize_bytes_tensor(array: np.ndarray) -> bytes:
    """BYTES wire form: per element, a little-endian uint32 length then the bytes."""
    parts: list[bytes] = []
    for v in np.asarray(array, dtype=object).reshape(-1).tolist():
        b = v if isinstance(v, bytes) else str(v).encode("utf-8")
        parts.append(struct.pack("<I", len(b)))
        parts.append(b)
    return b"".join(parts)


def deserialize_bytes_tensor(buf: bytes | memoryview, count: int) -> np.ndarray:
    """Inverse of ``serialize_bytes_tensor``: exactly ``count`` elements filling ``buf``.

    Raises ValueError when the framing does not match.
    """
    mv = memoryview(buf)
    offset, end = 0, len(mv)
    if count * 4 > end:  # before allocating: a declared shape must not size our memory
        raise ValueError(f"{end} bytes cannot hold {count} elements")
    out = np.empty(count, dtype=object)
    for i in range(count):
        if offset + 4 > end:
            raise ValueError(f"truncated: element {i} of {count} has no length prefix")
        (n,) = struct.unpack_from("<I", mv, offset)
        offset += 4
        if offset + n > end:
            raise ValueError(f"truncated: element {i} declares {n} bytes, {end - offset} left")
        out[i] = bytes(mv[offset : offset + n])
        offset += n
    if offset != end:
        raise ValueError(f"{end - offset} bytes left after {count} elements")
    return out
