"""The store under Feast's CLI: `feast apply` and `feast materialize-incremental` unchanged."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import yaml
from feast import FeatureStore

from loadtests.bench.features import packed_config
from feature_store.reader import FeastReader, PackedReader

ROOT = Path(__file__).resolve().parents[2]


def test_feast_cli_apply_and_materialize_incremental(tmp_path: Path, demo_data) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    cfg = {
        "project": "cli",
        "registry": "registry.db",
        "provider": "local",
        "online_store": packed_config("embedded"),
        "offline_store": {"type": "file"},
        "entity_key_serialization_version": 3,
    }
    (repo / "feature_store.yaml").write_text(yaml.safe_dump(cfg))
    (repo / "definitions.py").write_text(
        "from pathlib import Path\nfrom loadtests.bench.features import demo_objects\n"
        "(customer, push, profile, activity, contact, churn, writer) = "
        f"demo_objects(Path({str(demo_data[0])!r}))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    feast = [sys.executable, "-m", "feast.cli.cli"]
    for args in (["apply"], ["materialize-incremental", "2100-01-01T00:00:00"]):
        done = subprocess.run(
            feast + args, cwd=repo, env=env, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stderr[-2000:]
    store = FeatureStore(repo_path=str(repo))
    ids = np.arange(1, 400, dtype=np.int64)
    packed = PackedReader.from_store(store, "churn_model").read(ids)
    assert packed.found.sum() > 200
    np.testing.assert_array_equal(
        packed.values, FeastReader.from_store(store, "churn_model").read(ids).values
    )
