"""The key-value interface both backends (LMDB, Redis) offer, and what a batch read returns.

The Feast adapter writes through it and the batch reader reads through it, so neither
knows which backend holds the records. Keys are ``prefix + 8-byte id``
(:func:`feature_store.online_store.layout.build_keys`); values are packed records.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Sequence

import numpy as np


@dataclass
class Replies:
    """One view's replies to a batch read."""

    found: np.ndarray  # (N,) bool
    records: list[bytes]  # the records of found rows, in row order


@dataclass
class Fetched:
    """A batch read of N ids over V views: replies per view, and the whole block when complete.

    ``joined`` holds every record entity-major (id 0's V records, then id 1's...) and is
    set only when every key was found: the reader's one-pass decode reads it as an
    (N, bytes per entity) matrix.
    """

    views: list[Replies]
    joined: bytes | None = None


class KeyValueStore(ABC):
    """Where packed records live: one round trip per batch read, bulk writes, prefix deletes.

    Failures surface as :class:`feature_store.errors.OnlineStoreUnavailable` naming
    ``name``, so the server can answer 503 with what is down.
    """

    name = "feature store"

    @abstractmethod
    def fetch(self, prefixes: Sequence[bytes], ids: np.ndarray) -> Fetched:
        """The records of ``prefix + id`` for every id and prefix, in one round trip."""

    @abstractmethod
    def write(self, keys: list[bytes], values: list[bytes]) -> None:
        """Store ``values`` under ``keys`` (same length), replacing what was there."""

    @abstractmethod
    def delete(self, keys: list[bytes]) -> int:
        """Delete these keys (an erasure); returns how many existed."""

    @abstractmethod
    def delete_prefix(self, prefix: bytes) -> int:
        """Delete every key starting with ``prefix``; returns how many went."""

    @abstractmethod
    def populated(self, prefixes: Sequence[bytes]) -> list[bool]:
        """Whether each prefix holds records (readiness: an empty or unmaterialized store is not
        ready). Cheap: a marker lookup or one index seek, never a scan of the data."""
