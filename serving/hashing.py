"""The salted splitmix64 hash every per-customer split uses (bandit holdout, rollout buckets).

One definition, in numpy over a whole id array (uint64 arithmetic wraps, as splitmix64
wants) and in Python ints for one id, so both paths give the same answer.
"""

from __future__ import annotations

import functools
import hashlib

import numpy as np

_SPLITMIX = (0xBF58476D1CE4E5B9, 0x94D049BB133111EB)  # splitmix64's multipliers
_MIX1, _MIX2 = np.uint64(_SPLITMIX[0]), np.uint64(_SPLITMIX[1])
_U27, _U30, _U31 = np.uint64(27), np.uint64(30), np.uint64(31)
_M64 = (1 << 64) - 1


@functools.lru_cache(maxsize=64)
def salt_seed(salt: str) -> np.uint64:
    """64 bits of blake2b of the salt: any string, ``|`` and non-ASCII included."""
    return np.uint64(
        int.from_bytes(hashlib.blake2b(salt.encode(), digest_size=8).digest(), "little")
    )


def salted_hash(customer_ids: np.ndarray, salt: str) -> np.ndarray:
    """uint64 hash of each id under ``salt``: ``splitmix64(id + seed(salt))``, one array pass."""
    z = np.asarray(customer_ids, dtype=np.int64).view(np.uint64) + salt_seed(salt)
    z = (z ^ (z >> _U30)) * _MIX1
    z = (z ^ (z >> _U27)) * _MIX2
    return z ^ (z >> _U31)


def salted_hash_one(customer_id: int, salt: str) -> int:
    """``salted_hash`` of one id in Python ints: no numpy fixed cost on a one-element array."""
    z = (customer_id + int(salt_seed(salt))) & _M64
    z = ((z ^ (z >> 30)) * _SPLITMIX[0]) & _M64
    z = ((z ^ (z >> 27)) * _SPLITMIX[1]) & _M64
    return z ^ (z >> 31)
