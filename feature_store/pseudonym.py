"""Keyed pseudonyms of customer ids: SipHash-2-4 of the id's 8 little-endian bytes under a
128-bit secret key.

SipHash is a keyed pseudo-random function made for short inputs like these: without the
key a pseudonym neither reveals its id nor can be computed from a guessed id; with it
the same id always gives the same pseudonym (the equality that logs, OPE and evidence
need, and what suppression entries are matched by). Computed with numpy over a whole
batch (the same rounds on whole uint64 columns, no loop per customer) and in Python ints
for a handful of ids. It lives here, below ``serving``, because materialization drops
suppressed customers with it and the feature store never imports the server.
"""

from __future__ import annotations

import numpy as np

_M64 = (1 << 64) - 1
_IV = (0x736F6D6570736575, 0x646F72616E646F6D, 0x6C7967656E657261, 0x7465646279746573)
_LEN8 = 8 << 56  # SipHash's last block for an 8-byte message: the length in the top byte


def pseudonyms(customer_ids: np.ndarray, key: bytes) -> np.ndarray:
    """int64 pseudonym per id (SipHash-2-4 of the id under ``key``), same order."""
    ids = np.asarray(customer_ids, dtype=np.int64).reshape(-1)
    if len(ids) <= 4:  # numpy's fixed cost per call dominates below a handful of ids
        return np.array([_one(int(i), key) for i in ids.tolist()], dtype=np.uint64).view(np.int64)
    return _many(ids.view(np.uint64), key).view(np.int64)


def pseudonym_hex(customer_id: int, key: bytes) -> str:
    """One id's pseudonym as 16 hex digits: what the audit log names."""
    return f"{_one(int(customer_id), key):016x}"


def _init(key: bytes) -> tuple[int, int, int, int]:
    k0, k1 = int.from_bytes(key[:8], "little"), int.from_bytes(key[8:16], "little")
    return k0 ^ _IV[0], k1 ^ _IV[1], k0 ^ _IV[2], k1 ^ _IV[3]


def _rotl(x: int, b: int) -> int:
    return ((x << b) | (x >> (64 - b))) & _M64


def _one(customer_id: int, key: bytes) -> int:
    """SipHash-2-4 of one 8-byte message in Python ints."""
    m = customer_id & _M64
    v0, v1, v2, v3 = _init(key)
    v3 ^= m
    v0, v1, v2, v3 = _round(*_round(v0, v1, v2, v3))
    v0 ^= m
    v3 ^= _LEN8
    v0, v1, v2, v3 = _round(*_round(v0, v1, v2, v3))
    v0 ^= _LEN8
    v2 ^= 0xFF
    for _ in range(4):
        v0, v1, v2, v3 = _round(v0, v1, v2, v3)
    return v0 ^ v1 ^ v2 ^ v3


def _round(v0: int, v1: int, v2: int, v3: int) -> tuple[int, int, int, int]:
    v0 = (v0 + v1) & _M64
    v1 = _rotl(v1, 13) ^ v0
    v0 = _rotl(v0, 32)
    v2 = (v2 + v3) & _M64
    v3 = _rotl(v3, 16) ^ v2
    v0 = (v0 + v3) & _M64
    v3 = _rotl(v3, 21) ^ v0
    v2 = (v2 + v1) & _M64
    v1 = _rotl(v1, 17) ^ v2
    v2 = _rotl(v2, 32)
    return v0, v1, v2, v3


_S = {b: (np.uint64(b), np.uint64(64 - b)) for b in (13, 16, 17, 21, 32)}


def _vrotl(x: np.ndarray, b: int) -> np.ndarray:
    left, right = _S[b]
    return (x << left) | (x >> right)


def _vround(v: list[np.ndarray]) -> None:
    v0, v1, v2, v3 = v
    v0 += v1
    v1 = _vrotl(v1, 13) ^ v0
    v0 = _vrotl(v0, 32)
    v2 += v3
    v3 = _vrotl(v3, 16) ^ v2
    v0 += v3
    v3 = _vrotl(v3, 21) ^ v0
    v2 += v1
    v1 = _vrotl(v1, 17) ^ v2
    v2 = _vrotl(v2, 32)
    v[:] = [v0, v1, v2, v3]


def _many(m: np.ndarray, key: bytes) -> np.ndarray:
    """SipHash-2-4 over a uint64 array: the same rounds on whole columns (uint64 wraps)."""
    n = len(m)
    v = [np.full(n, x, dtype=np.uint64) for x in _init(key)]
    v[3] ^= m
    _vround(v)
    _vround(v)
    v[0] ^= m
    last = np.uint64(_LEN8)
    v[3] ^= last
    _vround(v)
    _vround(v)
    v[0] ^= last
    v[2] ^= np.uint64(0xFF)
    for _ in range(4):
        _vround(v)
    return v[0] ^ v[1] ^ v[2] ^ v[3]
