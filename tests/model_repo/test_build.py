"""`reengage build` end to end on a small copy: every step runs, a rerun changes nothing."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

from rich.console import Console

from feature_store import repo as fr
from serving.build import STEPS, run_build
from serving.settings import load_settings


def test_build_then_rebuild_is_idempotent(tmp_path: Path) -> None:
    repo = tmp_path / "feature_store"
    repo.mkdir()
    for name in ("definitions.py", "feature_store.yaml", ".feastignore"):
        shutil.copy(Path(fr.__file__).parent / name, repo / name)
    settings = load_settings(
        {
            "data": {"customers": 600, "seed": 3},
            "features": {"repo_path": str(repo)},
            "models": {"repo_path": str(tmp_path / "model_repo")},
        }
    )
    console = Console(file=io.StringIO(), width=100)
    first = run_build(settings, console)
    assert list(first["steps"]) == list(STEPS)
    assert (
        first["steps"]["generate"]["regenerated"] and first["steps"]["materialize"]["materialized"]
    )
    assert {m: (r["version"], r["reused"]) for m, r in first["models"].items()} == {
        "churn": (1, False),
        "engagement": (1, False),
    }
    assert (tmp_path / "model_repo" / "churn" / "1" / "model.onnx").is_file()
    again = run_build(settings, console)
    assert (
        not again["steps"]["generate"]["regenerated"]
        and not again["steps"]["materialize"]["materialized"]
    )
    assert all(r["reused"] and r["version"] == 1 for r in again["models"].values())
    only = run_build(settings, console, steps=("generate", "train_churn"))
    assert only["steps"]["apply"]["skipped"] and list(only["models"]) == ["churn"]
    store = fr.load_store(settings.features)
    online = store.get_online_features(
        features=["customer_profile:plan_tier"], entity_rows=[{"customer_id": 1}]
    )
    assert online.to_dict()["plan_tier"][0] is not None
