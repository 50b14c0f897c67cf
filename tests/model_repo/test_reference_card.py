"""The build writes a drift reference and a model card beside every version it trains."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from model_repo.training import card, reference


def _version_dir(built: dict[str, Any], name: str) -> Path:
    return built["models"] / name / str(built["results"][name].version)


@pytest.mark.parametrize("name", ["churn", "engagement"])
def test_reference_bins_every_input_and_the_score(built: dict[str, Any], name: str) -> None:
    vdir = _version_dir(built, name)
    ref = json.loads((vdir / reference.FILE).read_text())
    metrics = json.loads((vdir / "metrics.json").read_text())
    assert [f["feature"] for f in ref["features"]] == metrics["features"]
    assert ref["rows"] == metrics["n_train"] + metrics["n_holdout"]
    for col in [*ref["features"], ref["score"]]:
        assert sum(col["counts"]) == ref["rows"]
        assert len(col["counts"]) == len(col["cuts"]) + 4  # missing, below, bins, above
        assert col["counts"][1] == col["counts"][-1] == 0  # the range is the reference's own
        assert all(a < b for a, b in zip(col["cuts"], col["cuts"][1:]))
    plan = next(f for f in ref["features"] if f["feature"] == "plan_tier")
    assert plan["kind"] == "categorical" and plan["cuts"] == [0.5, 1.5]
    assert ref["score"]["lo"] == 0.0 and ref["score"]["hi"] == 1.0
    assert (
        ref["score"]["kind"] == "quantile"
        and len(ref["score"]["cuts"]) == reference.QUANTILE_BINS - 1
    )
    shares = np.asarray(ref["score"]["counts"][2:-1]) / ref["rows"]
    assert np.all(np.abs(shares - 0.1) < 0.02)  # deciles of the version's own scores


def test_counts_follow_the_documented_edges() -> None:
    spec = {"lo": 0.0, "hi": 2.0, "cuts": [0.5, 1.5]}
    x = np.array([np.nan, -1.0, 0.0, 0.49, 0.5, 1.0, 2.0, 2.01])
    # missing, below, [0, .5), [.5, 1.5), [1.5, 2], above
    assert reference.counts(x, spec).tolist() == [1, 1, 2, 2, 1, 1]


@pytest.mark.parametrize("name", ["churn", "engagement"])
def test_card_reports_metrics_calibration_and_segments(built: dict[str, Any], name: str) -> None:
    text = (_version_dir(built, name) / card.FILE).read_text()
    metrics = built["results"][name].metrics
    assert f"# Model card: {name}, version {built['results'][name].version}" in text
    assert f"| AUC | {metrics['holdout_auc']:.4f} | {metrics['bayes_auc']:.4f} |" in text
    assert "Expected calibration error" in text
    for tier in ("basic", "plus", "premium"):
        assert f"| plan_tier | {tier} |" in text
    assert "| region | europe |" in text
    assert ("| age_band | 35-44 |" in text) == (name == "churn")  # engagement does not read age
    method = "TreeSHAP" if name == "churn" else "DeepLIFT"
    assert method in text


def test_calibration_of_true_probabilities_is_near_zero() -> None:
    rng = np.random.default_rng(0)
    p = rng.random(200_000)
    y = (rng.random(len(p)) < p).astype(np.int8)
    rows, ece = card.calibration(y, p)
    assert ece < 0.01 and len(rows) == card.CALIBRATION_BINS
    _, ece_bad = card.calibration(y, np.clip(p + 0.2, 0, 1))
    assert ece_bad > 0.1


def test_a_version_without_documents_gets_them_from_its_own_model(
    built: dict[str, Any], tmp_path: Path
) -> None:
    """A reused version the build made before references existed is completed from model.onnx."""
    from feature_store import repo as fr
    from model_repo.training import common, churn
    from model_repo.training.train import write_documents
    from serving.settings import FeatureSettings

    src = _version_dir(built, "churn")
    vdir = tmp_path / "churn" / src.name
    shutil.copytree(src, vdir)
    (vdir / reference.FILE).unlink()
    (vdir / card.FILE).unlink()
    feature_repo = built["models"].parent / "feature_store"
    store = fr.load_store(FeatureSettings(repo_path=feature_repo))
    from feature_store.datagen.files import read_labels

    data = common.load_training_data(
        store,
        churn.FEATURE_SERVICE,
        read_labels(feature_repo / "data"),
        churn.LABEL,
        churn.P_COLUMN,
    )
    write_documents(vdir, json.loads((vdir / "metrics.json").read_text()), data, None)
    want = json.loads((src / reference.FILE).read_text())
    got = json.loads((vdir / reference.FILE).read_text())
    assert [f["counts"] for f in got["features"]] == [f["counts"] for f in want["features"]]
    # ONNX Runtime and LightGBM agree to 1e-4: at most a few rows sit on the other side of a cut
    assert np.abs(np.subtract(got["score"]["counts"], want["score"]["counts"])).sum() <= 10
    assert (vdir / card.FILE).read_text().startswith("# Model card: churn")
