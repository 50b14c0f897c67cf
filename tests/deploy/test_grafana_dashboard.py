"""deploy/grafana-dashboard.json: every panel's query names a metric the server exports
(serving/metrics.py, as Ray's metrics agent names it), groups by labels that metric has,
and every metric we export is on the dashboard."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from serving.metrics import DEFINITIONS, MetricDef

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana-dashboard.json"
METRIC = re.compile(r"\b(ray_[a-z0-9_]+)")
BY = re.compile(r"\bby \(([^)]*)\)")


def exported(d: MetricDef) -> dict[str, tuple[str, ...]]:
    """Prometheus series names of one metric -> the labels they carry (Ray adds ``ray_``;
    histograms are ``_bucket`` (with ``le``), ``_count`` and ``_sum``; counters end in ``_total``;
    gauges keep their name)."""
    base = "ray_" + d.name
    if d.kind == "histogram":
        return {
            base + "_bucket": (*d.tag_keys, "le"),
            base + "_count": d.tag_keys,
            base + "_sum": d.tag_keys,
        }
    if d.kind == "gauge":
        return {base: d.tag_keys}
    return {base if base.endswith("_total") else base + "_total": d.tag_keys}


SERIES = {name: labels for d in DEFINITIONS.values() for name, labels in exported(d).items()}


@pytest.fixture(scope="module")
def panels() -> list[dict]:
    doc = json.loads(DASHBOARD.read_text())
    assert doc["uid"] and doc["title"] == "reengage"
    assert {v["name"] for v in doc["templating"]["list"]} >= {"datasource"}
    return [p for p in doc["panels"] if p["type"] != "row"]


def test_every_query_names_an_exported_metric_and_its_labels(panels: list[dict]) -> None:
    assert panels
    for panel in panels:
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            expr = target["expr"]
            names = METRIC.findall(expr)
            assert names, (panel["title"], expr)
            for name in names:
                assert name in SERIES, f"{panel['title']}: {name} is not exported by the server"
                for group in BY.findall(expr):
                    for label in (x.strip() for x in group.split(",") if x.strip()):
                        assert label in SERIES[name], (
                            f"{panel['title']}: {name} has no label {label}"
                        )
            assert target["datasource"]["uid"] == "${datasource}"


def test_every_exported_metric_is_on_the_dashboard(panels: list[dict]) -> None:
    used = {name for p in panels for t in p["targets"] for name in METRIC.findall(t["expr"])}
    missing = [d.name for d in DEFINITIONS.values() if not used & set(exported(d))]
    assert not missing, f"metrics without a panel: {missing}"


def test_panels_do_not_overlap(panels: list[dict]) -> None:
    seen: set[tuple[int, int]] = set()
    for p in panels:
        g = p["gridPos"]
        cells = {
            (x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])
        }
        assert not cells & seen, p["title"]
        seen |= cells
