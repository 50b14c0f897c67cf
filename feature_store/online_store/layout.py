"""Where records live and what they look like: view layouts, keys and timestamps.

Each (entity, feature view) row is one value under ``<prefix>:<view>:`` + the entity id
as 8 big-endian bytes. The value starts with a 16-byte header (schema tag, flags, event
time in microseconds). Views whose features are all Float32 (or all Float64) are then a
fixed-size array of floats, so N rows decode with one ``np.frombuffer``; other views hold
length-prefixed Feast ``ValueProto`` bytes (:mod:`feature_store.online_store.codec`).

The schema tag is a CRC of the view's name, feature names and types as the registry
states them: a record written under another schema is never decoded as this one.
"""

from __future__ import annotations

import time
import zlib
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import numpy as np
from feast import FeatureView, RepoConfig

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
HEADER = np.dtype([("tag", "<u4"), ("flags", "<u4"), ("ts", "<i8")])
FLAG_GENERIC = 1
FORMAT_VERSION = "packed-v1"
ID_BYTES = 8


@dataclass(frozen=True)
class ViewLayout:
    """How one feature view's rows are laid out, derived from the registry's definition."""

    name: str
    features: tuple[str, ...]
    types: tuple[str, ...]
    tag: int
    packed: bool
    dtype: np.dtype  # record dtype (packed views) or HEADER (generic)
    ttl_us: int  # 0: no TTL
    defaults: tuple[float, ...]

    @property
    def size(self) -> int:
        return self.dtype.itemsize

    @property
    def value_field(self) -> str:
        """The ``ValueProto`` field a packed view's floats travel in (Feast's read/write API)."""
        return "float_val" if self.dtype["v"].base == np.float32 else "double_val"


def layout_for(view: FeatureView) -> ViewLayout:
    """The record layout of ``view``; the tag changes whenever names or types change."""
    names = tuple(f.name for f in view.features)
    types = tuple(str(f.dtype) for f in view.features)
    sig = f"{FORMAT_VERSION}|{view.name}|" + ",".join(f"{n}:{t}" for n, t in zip(names, types))
    kinds = set(types)
    packed = kinds in ({"Float32"}, {"Float64"})
    dtype = HEADER
    if packed:
        ftype = "<f4" if kinds == {"Float32"} else "<f8"
        dtype = np.dtype(HEADER.descr + [("v", ftype, (len(names),))])
    ttl = view.ttl if isinstance(view.ttl, timedelta) else timedelta(0)
    ttl_us = int(ttl / timedelta(microseconds=1))
    defaults = tuple(_default_of(f) for f in view.features)
    return ViewLayout(
        view.name, names, types, zlib.crc32(sig.encode()), packed, dtype, ttl_us, defaults
    )


def _default_of(field: Any) -> float:
    """A feature's fallback value: its ``default`` tag when numeric, else 0.0."""
    try:
        return float((field.tags or {}).get("default", 0.0))
    except (TypeError, ValueError):
        return 0.0


def key_prefix(config: RepoConfig) -> bytes:
    """The store's key namespace: ``key_prefix`` from the yaml, else the project name."""
    return (config.online_store.key_prefix or config.project).encode()


def view_prefix(prefix: bytes, view: str) -> bytes:
    return prefix + b":" + view.encode() + b":"


def build_keys(prefix: bytes, ids: np.ndarray) -> list[bytes]:
    """``prefix`` + 8-byte big-endian id per entity, built as one byte matrix.

    ``V`` (void) items convert to ``bytes`` without stripping NULs, so ``tolist`` makes
    the N key objects in C instead of N Python string formats.
    """
    n, p = len(ids), len(prefix)
    if n == 1:  # a single customer: one bytes concatenation, not five numpy calls
        return [prefix + int(ids[0]).to_bytes(ID_BYTES, "big", signed=True)]
    buf = np.empty((n, p + ID_BYTES), np.uint8)
    buf[:, :p] = np.frombuffer(prefix, np.uint8)
    buf[:, p:] = id_bytes(ids)
    return buf.view(f"V{p + ID_BYTES}").ravel().tolist()


def id_bytes(ids: np.ndarray) -> np.ndarray:
    """(N, 8) uint8: each id as the big-endian bytes that end its key."""
    return np.ascontiguousarray(ids, dtype=">i8").view(np.uint8).reshape(-1, ID_BYTES)


def ids_of_keys(keys: list[bytes], key_len: int) -> np.ndarray:
    """The int64 ids at the end of keys of one length (the inverse of :func:`build_keys`)."""
    raw = np.frombuffer(b"".join(keys), np.uint8).reshape(-1, key_len)
    return np.ascontiguousarray(raw[:, -ID_BYTES:]).view(">i8").ravel().astype(np.int64)


def to_us(ts: datetime) -> int:
    """Microseconds since the epoch; a naive datetime is UTC (as Feast hands them over)."""
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=timezone.utc)
    return (ts - EPOCH) // timedelta(microseconds=1)


def from_us(us: int) -> datetime:
    return EPOCH + timedelta(microseconds=int(us))


def now_us() -> int:
    return time.time_ns() // 1000
