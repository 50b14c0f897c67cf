"""A generation on disk: written once, regenerated only when what identifies it changes."""

from __future__ import annotations

import shutil
from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest

from feature_store.datagen import files
from feature_store.datagen.files import ensure


def test_ensure_regenerates_only_on_change(tmp_path: Path, anchor: datetime) -> None:
    paths, made = ensure(tmp_path, 300, seed=1, snapshots=2, anchor=anchor)
    assert made and all(p.is_file() for p in paths.values())
    mtime = paths["labels"].stat().st_mtime_ns
    _, made = ensure(tmp_path, 300, seed=1, snapshots=2, anchor=anchor)
    assert not made and paths["labels"].stat().st_mtime_ns == mtime
    _, made = ensure(tmp_path, 300, seed=2, snapshots=2, anchor=anchor)
    assert made
    back = pd.read_parquet(paths["customer_profile"])
    assert len(back) == 600 and back["event_timestamp"].dt.tz is not None


def test_a_change_to_any_generator_module_regenerates(
    tmp_path: Path, anchor: datetime, monkeypatch: pytest.MonkeyPatch
) -> None:
    copy = tmp_path / "datagen"
    shutil.copytree(files.PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(files, "PACKAGE", copy)
    _, made = ensure(tmp_path / "data", 50, seed=1, snapshots=2, anchor=anchor)
    assert made
    for name in ("population.py", "labels.py", "schema.py"):
        before = files.code_hash()
        with (copy / name).open("a") as f:
            f.write("\n# a changed process\n")
        assert files.code_hash() != before, name
        _, made = ensure(tmp_path / "data", 50, seed=1, snapshots=2, anchor=anchor)
        assert made, name
