"""A small churn model trained by the real build path: Feast repo -> LightGBM -> version dir.

Shared by the runtime tests and the tree benchmark's tests (the session fixture
``trained`` in tests/conftest.py builds it once).

The version directory holds model.onnx, model.txt and the lleaves artifact compiled by
the build; its holdout rows are the training split's (``common.holdout_mask``).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from feature_store.datagen.files import ensure, read_labels
from feature_store import repo as fr
from model_repo.training import TrainResult, churn, common, train_model
from serving.settings import FeatureSettings

CUSTOMERS = 4_000
PARAMS = {"n_estimators": 40}  # a real but quick forest: compiling 300 trees takes ~7 s


@dataclass(frozen=True)
class Trained:
    models: Path  # the model repository
    result: TrainResult
    holdout: np.ndarray  # (N, 32) float32, the rows training held out

    @property
    def version_dir(self) -> Path:
        return self.models / "churn" / str(self.result.version)


def feast_repo(root: Path) -> tuple[Any, Any]:
    repo = root / "feature_store"
    repo.mkdir()
    for name in ("definitions.py", "feature_store.yaml", ".feastignore"):
        shutil.copy(Path(fr.__file__).parent / name, repo / name)
    ensure(repo / "data", CUSTOMERS, seed=11, snapshots=2)
    store = fr.load_store(FeatureSettings(repo_path=repo))
    fr.apply(store)
    return store, read_labels(repo / "data")


def train_small_churn(root: Path) -> Trained:
    """The churn model trained on a fresh small Feast repo under ``root``."""
    store, labels = feast_repo(root)
    models = root / "model_repo"
    result = train_model(churn, store, labels, models, params=PARAMS)
    data = common.load_training_data(
        store, churn.FEATURE_SERVICE, labels, churn.LABEL, churn.P_COLUMN
    )
    return Trained(models, result, np.ascontiguousarray(data.test[0]))
