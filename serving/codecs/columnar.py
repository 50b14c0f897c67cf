"""Columnar answers without per-row Python objects: JSON text and Arrow IPC.

A scored batch is a handful of numeric columns plus string columns of two kinds: a
small vocabulary (action, reason: codes into a tuple of names) and decision ids
(``<batch>-<row>``). Numeric columns go through orjson's numpy path. String columns are
built as byte matrices with numpy: each row's JSON token NUL-padded to a fixed width,
then one boolean compress drops the padding and one ``tobytes()`` yields the array. Arrow
gets dictionary arrays for vocabularies and a string array built from offsets and data
buffers. No column becomes a list of Python objects on the way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

ARROW_STREAM = "application/vnd.apache.arrow.stream"
_DIGITS = 7  # rows per request are bounded by 10,000 (ScoreRequest); 7 digits is ample


@dataclass(frozen=True)
class Vocabulary:
    """A string column as codes into ``names``; code -1 is null."""

    codes: np.ndarray
    names: tuple[str, ...]


@dataclass(frozen=True)
class RowIds:
    """``<prefix>-<row>`` where ``mask`` is set, null elsewhere (decision ids)."""

    prefix: str
    mask: np.ndarray


# -------------------------------------------------------------------------------- JSON

# Below this many rows a string column is cheaper as a short list through orjson than as
# a byte matrix (a dozen numpy calls of fixed cost); the two encodings give the same JSON.
SMALL_ROWS = 32


def json_bytes(columns: dict[str, Any]) -> bytes:
    """One JSON object; arrays via orjson's numpy path, string columns as byte matrices."""
    if all(_rows(v) < SMALL_ROWS for v in columns.values()):
        return orjson.dumps(
            {k: _small(v) for k, v in columns.items()}, option=orjson.OPT_SERIALIZE_NUMPY
        )
    parts = [b"{"]
    for i, (name, value) in enumerate(columns.items()):
        parts.append(b"%s%s:" % (b"," if i else b"", orjson.dumps(name)))
        parts.append(_json_value(value))
    parts.append(b"}")
    return b"".join(parts)


def _rows(value: Any) -> int:
    if isinstance(value, Vocabulary):
        return len(value.codes)
    if isinstance(value, RowIds):
        return len(value.mask)
    return len(value) if isinstance(value, np.ndarray) else 0


def _small(value: Any) -> Any:
    """A string column of a few rows as a plain list (the small-answer path)."""
    if isinstance(value, Vocabulary):
        return [value.names[c] if c >= 0 else None for c in value.codes.tolist()]
    if isinstance(value, RowIds):
        return row_id_strings(value).tolist()
    return value


def _json_value(value: Any) -> bytes:
    if isinstance(value, Vocabulary):
        return _vocabulary_json(value)
    if isinstance(value, RowIds):
        return _row_ids_json(value)
    return orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY)


def _tokens(strings: list[bytes], width: int) -> np.ndarray:
    """(K, width + 1) uint8: each token NUL-padded, then a comma."""
    out = np.zeros((len(strings), width + 1), dtype=np.uint8)
    out[:, -1] = ord(",")
    for k, s in enumerate(strings):  # once per vocabulary entry, not per row
        out[k, : len(s)] = np.frombuffer(s, np.uint8)
    return out


def _array(matrix: np.ndarray) -> bytes:
    """``[row,row,...]`` from a token matrix whose rows end in a comma; NUL padding dropped
    by one boolean compress (no byte of JSON text is ever NUL)."""
    if matrix.shape[0] == 0:
        return b"[]"
    body = matrix[matrix != 0].tobytes()
    return b"[" + body[:-1] + b"]"


def _vocabulary_json(column: Vocabulary) -> bytes:
    names = [orjson.dumps(n) for n in column.names] + [b"null"]
    table = _tokens(names, max(len(n) for n in names))
    codes = np.where(column.codes < 0, len(column.names), column.codes)
    return _array(table[codes])


def _row_ids_json(column: RowIds) -> bytes:
    """Rows of ``"prefix-`` + digits (NUL-padded) + ``",``; null rows ``null,``."""
    n = len(column.mask)
    head = np.frombuffer(
        orjson.dumps(column.prefix + "-")[:-1], np.uint8
    )  # without the closing quote
    out = np.zeros((n, len(head) + _DIGITS + 2), dtype=np.uint8)
    out[:, : len(head)] = head
    out[:, len(head) : len(head) + _DIGITS] = _digits(n)[0]
    out[:, -2:] = np.frombuffer(b'",', np.uint8)
    null = np.zeros(out.shape[1], np.uint8)
    null[:4], null[-1] = np.frombuffer(b"null", np.uint8), ord(",")
    out[~np.asarray(column.mask, bool)] = null
    return _array(out)


_ROW_DIGITS = np.zeros((0, _DIGITS), np.uint8)


def _digits(n: int) -> tuple[np.ndarray, np.ndarray]:
    """(n, 7) uint8 ASCII digits of rows 0..n-1, left-aligned with NUL padding, and each
    row's length. Row numbers are the same for every answer, so they are computed once
    (for the largest n seen) and sliced, rather than converted per answer."""
    global _ROW_DIGITS
    if len(_ROW_DIGITS) < n:
        text = np.arange(max(n, 10_000), dtype=np.int64).astype(f"S{_DIGITS}")
        _ROW_DIGITS = text.view(np.uint8).reshape(len(text), _DIGITS)
    matrix = _ROW_DIGITS[:n]
    return matrix, np.count_nonzero(matrix, axis=1)


def row_id_strings(column: RowIds) -> np.ndarray:
    """The ids as an object array (for callers that need Python strings, e.g. one row)."""
    out = np.full(len(column.mask), None, dtype=object)
    rows = np.flatnonzero(column.mask)
    out[rows] = np.strings.add(column.prefix + "-", rows.astype(np.str_)).astype(object)
    return out


# ------------------------------------------------------------------------------- Arrow


def arrow_bytes(columns: dict[str, Any], metadata: dict[str, str] | None = None) -> bytes:
    """An Arrow IPC stream of one record batch; dict-valued columns go to the metadata."""
    import pyarrow as pa

    arrays, names, meta = [], [], dict(metadata or {})
    for name, value in columns.items():
        if isinstance(value, dict):
            meta[name] = orjson.dumps(value).decode()
            continue
        arrays.append(_arrow_array(value))
        names.append(name)
    batch = pa.RecordBatch.from_arrays(arrays, names=names)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, batch.schema.with_metadata(meta)) as writer:
        writer.write_batch(batch)
    return sink.getvalue().to_pybytes()


def _arrow_array(value: Any) -> Any:
    import pyarrow as pa

    if isinstance(value, Vocabulary):
        codes = np.asarray(value.codes)
        indices = pa.array(codes.astype(np.int32), mask=codes < 0)
        return pa.DictionaryArray.from_arrays(indices, pa.array(value.names, pa.string()))
    if isinstance(value, RowIds):
        return _row_ids_arrow(value)
    array = np.asarray(value)
    if array.dtype.kind == "f":
        return pa.array(array, mask=np.isnan(array))
    return pa.array(array)


def _row_ids_arrow(column: RowIds) -> Any:
    """A string array from buffers: offsets by cumsum, data by masking the digit matrix."""
    import pyarrow as pa

    mask = np.asarray(column.mask, bool)
    n, head = len(mask), (column.prefix + "-").encode()
    digits, length = _digits(n)
    sizes = np.where(mask, len(head) + length, 0)
    offsets = np.zeros(n + 1, np.int32)
    np.cumsum(sizes, out=offsets[1:])
    body = np.zeros((n, len(head) + _DIGITS), np.uint8)
    body[:, : len(head)] = np.frombuffer(head, np.uint8)
    body[:, len(head) :] = digits
    keep = (body != 0) & mask[:, None]
    data = body[keep].tobytes()
    validity = pa.array(mask).buffers()[1]
    return pa.StringArray.from_buffers(
        n, pa.py_buffer(offsets.tobytes()), pa.py_buffer(data), validity
    )
