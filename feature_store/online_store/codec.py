"""Records to bytes and back: packed float rows in bulk, generic rows as ``ValueProto``s.

Decoding is vectorized over a batch and decides, per row, what the reader and Feast's
``online_read`` both report: found, missing, written under another schema (never
decoded), or older than the view's TTL (read as not found).
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import compress
from typing import Sequence

import numpy as np
from feast.protos.feast.types.Value_pb2 import Value as ValueProto

from feature_store.online_store.kv import Replies
from feature_store.online_store.layout import FLAG_GENERIC, HEADER, ViewLayout

# read status per (row, view)
MISSING, OK, EXPIRED, SCHEMA = 0, 1, 2, 3


def encode_packed(layout: ViewLayout, ts_us: np.ndarray, values: np.ndarray) -> list[bytes]:
    """N records of a packed view from (N,) microsecond times and an (N, F) matrix."""
    rec = np.zeros(len(ts_us), layout.dtype)
    rec["tag"] = layout.tag
    rec["ts"] = ts_us
    rec["v"] = values
    return rec.view(f"V{layout.size}").tolist()


def encode_generic(layout: ViewLayout, ts_us: int, row: dict[str, ValueProto]) -> bytes:
    """One record of a non-float view: the header, then a length-prefixed proto per feature."""
    head = np.zeros(1, HEADER)
    head["tag"], head["flags"], head["ts"] = layout.tag, FLAG_GENERIC, ts_us
    parts = [head.tobytes()]
    for name in layout.features:
        proto = row.get(name)
        body = proto.SerializeToString() if proto is not None else b""
        parts.append(len(body).to_bytes(4, "little"))
        parts.append(body)
    return b"".join(parts)


def decode_generic(layout: ViewLayout, record: bytes) -> dict[str, ValueProto]:
    """The feature protos of one :func:`encode_generic` record."""
    out: dict[str, ValueProto] = {}
    pos = HEADER.itemsize
    for name in layout.features:
        size = int.from_bytes(record[pos : pos + 4], "little")
        pos += 4
        proto = ValueProto()
        proto.ParseFromString(record[pos : pos + size])
        pos += size
        out[name] = proto
    return out


def values_from_protos(layout: ViewLayout, rows: Sequence[dict[str, ValueProto]]) -> np.ndarray:
    """(N, F) floats from Feast's per-row ValueProto dicts; unset values become NaN."""
    field = layout.value_field
    out = np.empty((len(rows), len(layout.features)), layout.dtype["v"].base)
    for j, name in enumerate(layout.features):
        protos = [r.get(name) for r in rows]
        out[:, j] = [
            getattr(p, field) if p is not None and p.HasField(field) else np.nan for p in protos
        ]
    return out


@dataclass
class Decoded:
    """One view's rows of a batch read: status per row, times, and the packed values."""

    status: np.ndarray  # (N,) int8: MISSING / OK / EXPIRED / SCHEMA
    ts_us: np.ndarray  # (N,) int64, 0 where not OK
    values: np.ndarray | None  # (N, F) floats for packed views (garbage where not OK)
    records: list[bytes] | None = None  # generic views: present records, in row order
    all_ok: bool = False  # every row OK: nothing to mask


def decode(layout: ViewLayout, fetched: Replies, now: int) -> Decoded:
    """Vectorized decode of one view's records; rows past the view's TTL read as EXPIRED."""
    if layout.packed and len(fetched.records) == len(fetched.found):  # every row found: no scatter
        dec = _decode_all_found(layout, fetched)
    else:
        dec = _decode_some_found(layout, fetched)
    _expire(layout, dec, now)
    if not dec.all_ok:
        dec.ts_us[dec.status != OK] = 0
    return dec


def _decode_all_found(layout: ViewLayout, fetched: Replies) -> Decoded:
    """A packed view whose every row was found: the records are the rows, in order."""
    rec, good = _packed_records(layout, fetched)
    status = np.full(len(fetched.found), OK, np.int8)
    if good is not None:
        status[~good] = SCHEMA
    return Decoded(status, rec["ts"].astype(np.int64), rec["v"], None, good is None)


def _decode_some_found(layout: ViewLayout, fetched: Replies) -> Decoded:
    """Records scattered to their rows; generic views decode only the header here."""
    n = len(fetched.found)
    status = np.full(n, MISSING, np.int8)
    ts = np.zeros(n, np.int64)
    values = np.full((n, len(layout.features)), np.nan, np.float32) if layout.packed else None
    rows = np.flatnonzero(fetched.found)
    right = None  # the found rows' tag check; None: all right
    if rows.size and values is not None:
        rec, right = _packed_records(layout, fetched)
        values[rows], ts[rows] = rec["v"], rec["ts"]
    elif rows.size:
        heads = np.frombuffer(b"".join(r[: HEADER.itemsize] for r in fetched.records), HEADER)
        ts[rows], right = heads["ts"], heads["tag"] == layout.tag
    status[rows] = OK if right is None else np.where(right, OK, SCHEMA)
    records = None if layout.packed else fetched.records
    return Decoded(status, ts, values, records, rows.size == n and right is None)


def _expire(layout: ViewLayout, dec: Decoded, now: int) -> None:
    """Mark OK rows older than the view's TTL as EXPIRED (Feast's ``online_read`` does too)."""
    if not layout.ttl_us:
        return
    expired = dec.ts_us < now - layout.ttl_us
    if not dec.all_ok:
        expired &= dec.status == OK
    if expired.any():
        dec.status[expired] = EXPIRED
        dec.all_ok = False


def _packed_records(layout: ViewLayout, fetched: Replies) -> tuple[np.ndarray, np.ndarray | None]:
    """The found records as ``layout.dtype``, and which carry this layout's tag (None: all).

    Fast path: one ``np.frombuffer`` over the joined bytes. It is only trusted when every
    tag matches: a tag fixes the record size, so by induction from the first record every
    record then starts where the frombuffer assumes. Otherwise (another schema, another
    size) records are sized one by one and only the right ones are decoded.
    """
    m = len(fetched.records)
    joined = b"".join(fetched.records)
    if len(joined) == m * layout.size:
        rec = np.frombuffer(joined, layout.dtype)
        if (rec["tag"] == layout.tag).all():
            return rec, None
    right = np.fromiter(map(len, fetched.records), np.int64, m) == layout.size
    rec = np.zeros(m, layout.dtype)
    if right.any():
        rec[right] = np.frombuffer(b"".join(compress(fetched.records, right)), layout.dtype)
    return rec, right & (rec["tag"] == layout.tag)
