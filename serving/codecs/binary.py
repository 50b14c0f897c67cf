"""The binary tensor extension, byte-for-byte as ``tritonclient.http`` speaks it.

Request: a JSON header of ``Inference-Header-Content-Length`` bytes, then the raw
tensors of the inputs that carry ``parameters.binary_data_size``, in input order
(BYTES elements length-prefixed with a little-endian uint32). Response: the same
framing; an output goes binary when its ``parameters.binary_data`` says so, else per
the request-level ``binary_data_output`` (which tritonclient sets to true when it names
no outputs). Pure functions: no HTTP framework here; routes pass bytes and the header.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np
import orjson
from pydantic import ValidationError

from serving.codecs.tensors import (
    check_shape,
    datatype_of,
    deserialize_bytes_tensor,
    element_count,
    from_ndarray,
    numpy_dtype,
    to_ndarray,
)
from serving.errors import InvalidRequest, MalformedBody
from serving.protocol.v2 import Datatype, InferenceRequest, MetadataTensor, RequestInput

HEADER_LENGTH = "Inference-Header-Content-Length"
JSON_CONTENT_TYPE = "application/json"
BINARY_CONTENT_TYPE = "application/octet-stream"


class ResponseMeta(Protocol):
    """What ``encode_infer_response`` reads from its first argument (an
    ``InferenceResponse`` fits)."""

    model_name: str
    model_version: str | None
    id: str | None


def decode_infer_request(
    body: bytes, header_length: int | None
) -> tuple[InferenceRequest, dict[str, np.ndarray]]:
    """Parse an infer body into the request and one ndarray per input, in input order.

    Binary inputs are ``np.frombuffer`` views on ``body`` (read-only, no copy); JSON
    inputs go through ``tensors.to_ndarray``.
    """
    header, binary_start = _split(body, header_length)
    request = _parse_header(header)
    arrays: dict[str, np.ndarray] = {}
    offset = binary_start
    for tensor in request.inputs:
        if tensor.name in arrays:
            raise InvalidRequest("input given twice", f"inputs[{tensor.name}]")
        size = tensor.parameters.binary_data_size if tensor.parameters else None
        if size is None:
            arrays[tensor.name] = to_ndarray(tensor)
            continue
        if header_length is None:
            raise MalformedBody(
                f"binary_data_size without an {HEADER_LENGTH} header",
                f"inputs[{tensor.name}].parameters.binary_data_size",
            )
        if tensor.data is not None:
            raise InvalidRequest("both data and binary_data_size given", f"inputs[{tensor.name}]")
        if offset + size > len(body):
            raise MalformedBody(
                f"binary section ends {offset + size - len(body)} bytes early",
                f"inputs[{tensor.name}].parameters.binary_data_size",
            )
        arrays[tensor.name] = _from_binary(tensor, body, offset, size)
        offset += size
    if header_length is not None and offset != len(body):
        raise MalformedBody(
            f"{len(body) - offset} bytes after the last binary input", HEADER_LENGTH
        )
    return request, arrays


def _split(body: bytes, header_length: int | None) -> tuple[memoryview, int]:
    if header_length is None:
        return memoryview(body), len(body)
    if not 0 < header_length <= len(body):
        raise MalformedBody(
            f"{header_length} is outside the body of {len(body)} bytes", HEADER_LENGTH
        )
    return memoryview(body)[:header_length], header_length


def _parse_header(header: memoryview) -> InferenceRequest:
    try:
        obj = orjson.loads(header)
    except orjson.JSONDecodeError as exc:
        raise MalformedBody(f"the inference header is not JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise InvalidRequest("the inference header must be a JSON object")
    try:
        return InferenceRequest.model_validate(obj)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise InvalidRequest(first["msg"], _field(first["loc"], obj)) from None


def _field(loc: tuple[Any, ...], obj: dict[str, Any]) -> str:
    """A pydantic location as a readable field: ``inputs[features].datatype``."""
    out = ""
    node: Any = obj
    for part in loc:
        if isinstance(part, int):
            name = (
                node[part].get("name")
                if isinstance(node, list) and isinstance(node[part], dict)
                else None
            )
            out += f"[{name if isinstance(name, str) else part}]"
            node = node[part] if isinstance(node, list) else None
        else:
            out += f".{part}" if out else str(part)
            node = node.get(part) if isinstance(node, dict) else None
    return out


def _from_binary(tensor: RequestInput, body: bytes, offset: int, size: int) -> np.ndarray:
    field = f"inputs[{tensor.name}]"
    check_shape(tensor.shape, f"{field}.shape")
    count = element_count(tensor.shape)
    if tensor.datatype is Datatype.BYTES:
        try:
            flat = deserialize_bytes_tensor(memoryview(body)[offset : offset + size], count)
        except ValueError as exc:
            raise InvalidRequest(
                f"BYTES data does not match shape {tensor.shape}: {exc}", field
            ) from None
        return flat.reshape(tensor.shape)
    dtype = numpy_dtype(tensor.datatype)
    if count * dtype.itemsize != size:
        raise InvalidRequest(
            f"binary_data_size {size} does not match shape {tensor.shape} of "
            f"{tensor.datatype.value} ({count * dtype.itemsize} bytes)",
            f"{field}.parameters.binary_data_size",
        )
    if count == 0:
        return np.empty(tensor.shape, dtype=dtype)
    return np.frombuffer(body, dtype=dtype, count=count, offset=offset).reshape(tensor.shape)


def encode_infer_response(
    meta: ResponseMeta, outputs: dict[str, np.ndarray], request: InferenceRequest
) -> tuple[bytes, dict[str, str]]:
    """Body and headers for an infer answer, with the outputs and form the request asked.

    Unnamed outputs: all, in ``outputs`` order. A requested output the model does not
    produce is the caller's mistake (``InvalidRequest`` naming it).
    """
    headers_json: list[dict[str, Any]] = []
    raws: list[bytes | memoryview] = []
    for name, binary in _selection(outputs, request):
        header, raw = from_ndarray(name, outputs[name], binary)
        headers_json.append(header)
        if raw is not None:
            raws.append(raw)
    doc: dict[str, Any] = {"model_name": meta.model_name}
    if meta.model_version is not None:
        doc["model_version"] = meta.model_version
    request_id = meta.id if meta.id is not None else request.id
    if request_id is not None:
        doc["id"] = request_id
    doc["outputs"] = headers_json
    head = orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY)
    if not raws:
        return head, {"Content-Type": JSON_CONTENT_TYPE}
    return b"".join([head, *raws]), {
        "Content-Type": BINARY_CONTENT_TYPE,
        HEADER_LENGTH: str(len(head)),
    }


def _selection(outputs: dict[str, np.ndarray], request: InferenceRequest) -> list[tuple[str, bool]]:
    default = bool(request.parameters and request.parameters.binary_data_output)
    if not request.outputs:
        return [(name, default) for name in outputs]
    chosen: list[tuple[str, bool]] = []
    for out in request.outputs:
        if out.name not in outputs:
            raise InvalidRequest(
                f"unknown output; this model has {sorted(outputs)}", f"outputs[{out.name}]"
            )
        flag = out.parameters.binary_data if out.parameters else None
        chosen.append((out.name, default if flag is None else bool(flag)))
    return chosen


def validate_inputs(arrays: dict[str, np.ndarray], spec: list[MetadataTensor]) -> None:
    """Check decoded inputs against a model's metadata: names, datatype, rank and every
    fixed dimension (``-1`` is variable)."""
    expected = {t.name: t for t in spec}
    missing = [n for n in expected if n not in arrays]
    if missing:
        raise InvalidRequest(
            f"missing input; the model needs {list(expected)}", f"inputs[{missing[0]}]"
        )
    unexpected = [n for n in arrays if n not in expected]
    if unexpected:
        raise InvalidRequest(
            f"unexpected input; the model takes {list(expected)}", f"inputs[{unexpected[0]}]"
        )
    for name, array in arrays.items():
        _check_tensor(name, array, expected[name])


def _check_tensor(name: str, array: np.ndarray, want: MetadataTensor) -> None:
    got = datatype_of(array.dtype)
    if got is not want.datatype:
        raise InvalidRequest(
            f"datatype {got.value}, the model takes {want.datatype.value}",
            f"inputs[{name}].datatype",
        )
    shape = array.shape
    ok = len(shape) == len(want.shape) and all(w == -1 or w == s for w, s in zip(want.shape, shape))
    if not ok:
        raise InvalidRequest(
            f"shape {list(shape)} does not fit the model's {want.shape} (-1: any)",
            f"inputs[{name}].shape",
        )
