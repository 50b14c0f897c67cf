"""A model repository built by the real training code, with the explainers the build writes.

Trained once per session on an 8,000-customer Feast repo (about 30 s on 2 cores) and
shared by the explainer tests and the /v1/explain API tests.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

CUSTOMERS = 8_000
REPO_FILES = ("definitions.py", "feature_store.yaml", ".feastignore")


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """models dir, TrainResults, each model's holdout matrix, and one feature table of the
    holdout customers over every feature either model reads (``names``, ``table``)."""
    from feature_store.datagen.files import ensure, read_labels
    from feature_store import repo as fr
    from model_repo.training import churn, common, engagement, train_churn, train_engagement
    from serving.settings import FeatureSettings

    root = tmp_path_factory.mktemp("explain")
    repo = root / "feature_store"
    repo.mkdir()
    for name in REPO_FILES:
        shutil.copy(Path(fr.__file__).parent / name, repo / name)
    ensure(repo / "data", CUSTOMERS, seed=11, snapshots=2)
    store = fr.load_store(FeatureSettings(repo_path=repo))
    fr.apply(store)
    labels = read_labels(repo / "data")
    models = root / "model_repo"
    results = {
        "churn": train_churn(store, labels, models),
        "engagement": train_engagement(store, labels, models),
    }
    holdout, frames = {}, {}
    for name, spec in (("churn", churn), ("engagement", engagement)):
        data = common.load_training_data(
            store, spec.FEATURE_SERVICE, labels, spec.LABEL, spec.P_COLUMN
        )
        holdout[name] = data.test[0]
        frames[name] = dict(zip(data.features, data.test[0].T))
    names = tuple(dict.fromkeys([*frames["churn"], *frames["engagement"]]))
    table = np.stack([frames["churn"].get(n, frames["engagement"].get(n)) for n in names], axis=1)
    return {
        "models": models,
        "results": results,
        "holdout": holdout,
        "names": names,
        "table": table.astype(np.float32),
    }
