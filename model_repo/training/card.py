"""The model card of a version (``card.md``), written by the build beside ``metrics.json``.

What a reviewer asks before a model serves customers: the data, the features and their
training ranges, holdout metrics beside the Bayes limit (the labels are draws from known
probabilities, so the best reachable AUC is computable), calibration, per-segment
metrics on the holdout (plan tier, region, age band: the segments ``/v1/monitor``
watches in production), how predictions are explained, and the known limits.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.metrics import roc_auc_score

from serving.monitoring.segments import SEGMENTATIONS

FILE = "card.md"
CALIBRATION_BINS = 10
MIN_SEGMENT_ROWS = 50  # fewer holdout rows (or one class only): the segment's AUC is not reported

_EXPLAINERS = {
    "tree_shap": "TreeSHAP (exact, path-dependent) on the booster text `model.txt`: per-feature "
    "contributions in log-odds that add up to the model's raw score",
    "deeplift_rescale": "DeepLIFT (rescale rule) compiled into `model.explain.onnx`: per-feature "
    "contributions in log-odds against a fixed baseline, adding up to the logit",
}


def calibration(
    y: np.ndarray, p: np.ndarray, bins: int = CALIBRATION_BINS
) -> tuple[list[dict[str, float]], float]:
    """Reliability table by predicted-probability quantile bins; the expected calibration error."""
    order = np.argsort(p, kind="stable")
    rows, ece = [], 0.0
    for part in np.array_split(order, bins):
        if not len(part):
            continue
        mean_p, rate = float(p[part].mean()), float(y[part].mean())
        rows.append({"rows": int(len(part)), "mean_predicted": mean_p, "observed_rate": rate})
        ece += len(part) / len(p) * abs(mean_p - rate)
    return rows, float(ece)


def segment_metrics(
    features: tuple[str, ...], x: np.ndarray, y: np.ndarray, p: np.ndarray, p_true: np.ndarray
) -> list[dict[str, Any]]:
    """Rows, positive rate, mean prediction, AUC and Bayes AUC per segment of the holdout."""
    out = []
    for seg in SEGMENTATIONS:
        if seg.feature not in features:
            continue
        codes = seg.codes(x[:, features.index(seg.feature)])
        for i, value in enumerate(seg.values):
            m = codes == i
            n = int(m.sum())
            both = n >= MIN_SEGMENT_ROWS and 0 < y[m].sum() < n
            out.append(
                {
                    "segment": seg.label,
                    "value": value,
                    "rows": n,
                    "positive_rate": float(y[m].mean()) if n else None,
                    "mean_predicted": float(p[m].mean()) if n else None,
                    "auc": float(roc_auc_score(y[m], p[m])) if both else None,
                    "bayes_auc": float(roc_auc_score(y[m], p_true[m])) if both else None,
                }
            )
    return out


def render(
    metrics: dict[str, Any],
    version: int,
    reference: dict[str, Any],
    x: np.ndarray,
    y: np.ndarray,
    p: np.ndarray,
    p_true: np.ndarray,
) -> str:
    """The card as Markdown; ``x, y, p, p_true`` are the holdout rows, labels, the version's
    predictions and the true probabilities."""
    features = tuple(metrics["features"])
    parts = [
        _header(metrics, version),
        _data(metrics),
        _features(reference),
        _metrics(metrics),
        _calibration(y, p),
        _segments(features, x, y, p, p_true),
        _explanation(metrics),
        _limits(metrics, features),
    ]
    return "\n\n".join(parts) + "\n"


def _header(m: dict[str, Any], version: int) -> str:
    return (
        f"# Model card: {m['model']}, version {version}\n\n"
        f"- trained at: {m.get('trained_at')}\n- label: `{m['label']}` (1 = the event happened)\n"
        f"- fingerprint: `{m['fingerprint'][:16]}` (training data, code and parameters)\n"
        f"- parameters: `{m.get('params')}`"
    )


def _data(m: dict[str, Any]) -> str:
    return (
        "## Data\n\n"
        "Synthetic customers with a documented generating process "
        "(`feature_store/datagen/generate.py`): "
        f"labels are Bernoulli draws from known probabilities. Training rows come from the Feast "
        f"offline store by a point-in-time join on the feature service `{m['feature_service']}` "
        f"at the label snapshot. {m['n_train']:,} training rows, {m['n_holdout']:,} holdout rows "
        f"(a fixed 20 % split by customer id hash: a customer is always on the same side)."
    )


def _features(reference: dict[str, Any]) -> str:
    lines = [
        "## Features",
        "",
        f"{len(reference['features'])} inputs, in the model's order; the drift "
        "reference (`reference.json`) bins each the way listed.",
        "",
        "| feature | bins | training range | missing |",
        "|---|---|---|---|",
    ]
    for f in reference["features"]:
        missing = f["counts"][0] / max(reference["rows"], 1)
        lines.append(
            f"| {f['feature']} | {len(f['cuts']) + 1} {f['kind']} | "
            f"{f['lo']:g} .. {f['hi']:g} | {missing:.1%} |"
        )
    return "\n".join(lines)


def _metrics(m: dict[str, Any]) -> str:
    return (
        "## Holdout metrics against the Bayes limit\n\n"
        "The Bayes limit is what the true probabilities score on the same holdout labels: "
        "no model can do better on average.\n\n"
        "| metric | model | Bayes limit | gap |\n|---|---|---|---|\n"
        f"| AUC | {m['holdout_auc']:.4f} | {m['bayes_auc']:.4f} | "
        f"{m['bayes_auc'] - m['holdout_auc']:.4f} |\n"
        f"| log loss | {m['holdout_logloss']:.4f} | {m['bayes_logloss']:.4f} | "
        f"{m['holdout_logloss'] - m['bayes_logloss']:.4f} |"
    )


def _calibration(y: np.ndarray, p: np.ndarray) -> str:
    rows, ece = calibration(y, p)
    lines = [
        "## Calibration",
        "",
        f"Holdout rows in {len(rows)} equal-count bins of the predicted "
        f"probability. Expected calibration error: {ece:.4f}.",
        "",
        "| bin | rows | mean predicted | observed rate |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {i + 1} | {r['rows']:,} | {r['mean_predicted']:.4f} | {r['observed_rate']:.4f} |"
        for i, r in enumerate(rows)
    ]
    return "\n".join(lines)


def _segments(
    features: tuple[str, ...], x: np.ndarray, y: np.ndarray, p: np.ndarray, p_true: np.ndarray
) -> str:
    def fmt(v: float | None) -> str:
        return "n/a" if v is None else f"{v:.4f}"

    lines = [
        "## Per segment (holdout)",
        "",
        f"AUC is left out (n/a) below {MIN_SEGMENT_ROWS} rows or with one class only.",
        "",
        "| segment | value | rows | positive rate | mean predicted | AUC | Bayes AUC |",
        "|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {s['segment']} | {s['value']} | {s['rows']:,} | {fmt(s['positive_rate'])} | "
        f"{fmt(s['mean_predicted'])} | {fmt(s['auc'])} | {fmt(s['bayes_auc'])} |"
        for s in segment_metrics(features, x, y, p, p_true)
    ]
    return "\n".join(lines)


def _explanation(m: dict[str, Any]) -> str:
    method = (m.get("explainer") or {}).get("method")
    text = _EXPLAINERS.get(method or "", "none: this version has no explainer")
    gap = (m.get("explainer") or {}).get("max_completeness_gap")
    checked = (
        f" The build checked completeness on the holdout (max gap {gap:.1e})."
        if gap is not None
        else ""
    )
    return (
        f"## Explanation method\n\n{text}. "
        f"`/v1/explain` and `/v1/score` with `explain` return them.{checked}"
    )


def _limits(m: dict[str, Any], features: tuple[str, ...]) -> str:
    missing = [s.feature for s in SEGMENTATIONS if s.feature not in features]
    lines = [
        "## Known limits",
        "",
        "- Trained and evaluated on synthetic data: the figures say how close the model gets to a "
        "known process, not how it does on real customers.",
        "- The labels are observed one snapshot before the newest: served features are a week "
        "fresher than the training rows (tenure moves with them).",
        "- Plan tier and region are inputs and drive the true churn and engagement rates, so "
        "per-segment rates differ by design; `/v1/monitor` reports contact rates per segment "
        "(four-fifths rule) in production.",
        "- Drift against `reference.json` is an alarm, not a measure of accuracy: accuracy comes "
        "from rewards and the holdout.",
    ]
    if missing:
        lines.append(
            f"- Not among this model's inputs, so no holdout segments by: {', '.join(missing)}."
        )
    return "\n".join(lines)
