"""The embedded backend: which keys were found, the joined block, prefix deletes, one env per
file."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from feature_store.online_store.layout import build_keys
from feature_store.online_store.lmdb_store import LmdbStore


def test_fetch_reports_found_rows_and_joins_only_complete_reads(tmp_path: Path) -> None:
    kv = LmdbStore(tmp_path / "db", map_size_mb=8)
    kv.write(build_keys(b"p:a:", np.array([1, 2, 3])), [b"a1", b"a2", b"a3"])
    kv.write(build_keys(b"p:b:", np.array([1, 3])), [b"b1", b"b3"])
    complete = kv.fetch([b"p:a:", b"p:b:"], np.array([3, 1], np.int64))
    assert complete.joined == b"a3b3a1b1"
    partial = kv.fetch([b"p:a:", b"p:b:"], np.array([2, 9, 3], np.int64))
    assert partial.joined is None
    assert partial.views[0].found.tolist() == [True, False, True] and partial.views[0].records == [
        b"a2",
        b"a3",
    ]
    assert partial.views[1].found.tolist() == [False, False, True] and partial.views[1].records == [
        b"b3"
    ]


def test_delete_prefix_and_one_environment_per_file(tmp_path: Path) -> None:
    kv = LmdbStore(tmp_path / "db", map_size_mb=8)
    kv.write(build_keys(b"p:a:", np.arange(5)) + build_keys(b"p:b:", np.arange(2)), [b"x"] * 7)
    assert kv.delete_prefix(b"p:a:") == 5
    assert not kv.fetch([b"p:a:"], np.arange(5)).views[0].found.any()
    assert LmdbStore(tmp_path / "db", map_size_mb=8).env is kv.env  # LMDB: one Environment per file
    assert "embedded LMDB" in kv.name and str((tmp_path / "db").resolve()) in kv.name
