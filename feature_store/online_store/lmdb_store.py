"""The embedded backend: an LMDB file, many reader processes, one writer, atomic writes.

No server to run or keep up: the default for development and single-node serving.
"""

from __future__ import annotations

import threading
from itertools import chain
from operator import itemgetter
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from feature_store.errors import OnlineStoreUnavailable
from feature_store.online_store.kv import Fetched, KeyValueStore, Replies
from feature_store.online_store.layout import build_keys, ids_of_keys


class LmdbStore(KeyValueStore):
    """Embedded LMDB: readers in many processes, one writer, each write one transaction.

    LMDB allows one ``Environment`` per file per process, hence the class-level cache.
    """

    _envs: dict[str, Any] = {}
    _lock = threading.Lock()

    def __init__(self, path: Path, map_size_mb: int) -> None:
        self.path = str(path.resolve())
        self.name = f"feature store (embedded LMDB at {self.path})"
        self.env = self._open(path, map_size_mb)

    def _open(self, path: Path, map_size_mb: int) -> Any:
        import lmdb

        with self._lock:
            env = self._envs.get(self.path)
            if env is None:
                path.mkdir(parents=True, exist_ok=True)
                env = lmdb.open(
                    self.path,
                    map_size=map_size_mb << 20,
                    max_readers=1024,
                    readahead=False,
                    max_dbs=0,
                )
                self._envs[self.path] = env
        return env

    def fetch(self, prefixes: Sequence[bytes], ids: np.ndarray) -> Fetched:
        import lmdb

        try:
            with self.env.begin(buffers=False) as txn:
                cursor = txn.cursor()
                views = [self._one(cursor, build_keys(prefix, ids)) for prefix in prefixes]
        except lmdb.MapResizedError:  # another process grew the map: adopt and retry
            self.env.set_mapsize(0)
            return self.fetch(prefixes, ids)
        except lmdb.Error as exc:
            raise OnlineStoreUnavailable(self.name, str(exc)) from exc
        return _with_joined(views, len(ids))

    @staticmethod
    def _one(cursor: Any, keys: list[bytes]) -> Replies:
        """One view's records; ``getmulti`` skips absent keys, so the keys it returns say which
        rows were found."""
        pairs = cursor.getmulti(keys)
        records = list(map(itemgetter(1), pairs))
        if len(pairs) == len(keys):
            return Replies(np.ones(len(keys), bool), records)
        found = np.zeros(len(keys), bool)
        if pairs:
            key_len = len(keys[0])
            found = np.isin(
                ids_of_keys(keys, key_len), ids_of_keys(list(map(itemgetter(0), pairs)), key_len)
            )
        return Replies(found, records)

    def write(self, keys: list[bytes], values: list[bytes]) -> None:
        with self.env.begin(write=True) as txn:
            txn.cursor().putmulti(zip(keys, values))

    def delete(self, keys: list[bytes]) -> int:
        with self.env.begin(write=True) as txn:
            return sum(bool(txn.delete(k)) for k in keys)

    def delete_prefix(self, prefix: bytes) -> int:
        deleted = 0
        with self.env.begin(write=True) as txn:
            cur = txn.cursor()
            if cur.set_range(prefix):
                while cur.key().startswith(prefix):
                    if not cur.delete():
                        break
                    deleted += 1
        return deleted

    def populated(self, prefixes: Sequence[bytes]) -> list[bool]:
        """One seek per prefix: the first key at or after it starts with it."""
        with self.env.begin(buffers=False) as txn:
            cursor = txn.cursor()
            return [bool(cursor.set_range(p)) and cursor.key().startswith(p) for p in prefixes]


def _with_joined(views: list[Replies], n: int) -> Fetched:
    """``views``, plus every record entity-major in one block when all ``n`` ids were found."""
    if not all(len(v.records) == n for v in views):
        return Fetched(views)
    if len(views) == 1:
        return Fetched(views, b"".join(views[0].records))
    return Fetched(views, b"".join(chain.from_iterable(zip(*(v.records for v in views)))))
