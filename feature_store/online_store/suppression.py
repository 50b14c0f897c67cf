"""Erased customers stay out of the online store: every write drops them.

The server keeps one suppression entry per erased customer, the customer's keyed
pseudonym (``feature_store.pseudonym``), never the id. It exports them to the file that
``suppression_file`` (online store config, default ``data/suppressed.json`` in the repo)
names, with the path of the key they were made with, whenever a customer is erased and
before ``reengage build`` materializes. ``PackedOnlineStore`` reads that file before
each write, so ``reengage build`` and the plain ``feast materialize`` alike skip
suppressed customers: no suppressed id is written back while its entry exists.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from feature_store.pseudonym import pseudonyms


@dataclass(frozen=True)
class Suppression:
    """Sorted int64 pseudonyms and the key that made them."""

    key: bytes
    held: np.ndarray

    def mask(self, ids: np.ndarray) -> np.ndarray:
        """True for ids under a suppression entry (one pseudonym pass, one searchsorted)."""
        ids = np.asarray(ids, dtype=np.int64)
        if len(self.held) == 0 or len(ids) == 0:
            return np.zeros(len(ids), bool)
        p = pseudonyms(ids, self.key)
        pos = np.minimum(np.searchsorted(self.held, p), len(self.held) - 1)
        return self.held[pos] == p


def save(path: Path, key_source: str, pseudonyms_hex: list[str]) -> None:
    """Write the export atomically (a reader sees the old file or the new one).
    ``key_source``: the key file's path, or ``env:NAME`` when the key is configured in the
    environment (the key itself is never written here)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"key": key_source, "pseudonyms": sorted(pseudonyms_hex)}))
    os.replace(tmp, path)


def _key(source: str) -> bytes:
    text = os.environ.get(source[4:], "") if source.startswith("env:") else Path(source).read_text()
    return bytes.fromhex(text.strip())


_cache: dict[str, tuple[float, Suppression | None]] = {}
_lock = threading.Lock()


def load(path: Path) -> Suppression | None:
    """The export at ``path``, re-read when its mtime moves; None when there is none."""
    try:
        mtime = path.stat().st_mtime
    except FileNotFoundError:
        return None
    with _lock:
        hit = _cache.get(str(path))
        if hit is not None and hit[0] == mtime:
            return hit[1]
    doc = json.loads(path.read_text())
    held = np.array(sorted(int(h, 16) for h in doc["pseudonyms"]), dtype=np.uint64).view(np.int64)
    held.sort()
    found = Suppression(_key(doc["key"]), held) if len(held) else None
    with _lock:
        _cache[str(path)] = (mtime, found)
    return found
