"""``GET /v1/monitor`` over HTTP on the app factory: admin group, window validation, the answer."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from serving.protocol.monitor import MonitorReport
from serving.settings import load_settings
from tests.serving.authkit import auth_overrides, bearer


@pytest.fixture
def client(make_dataplane: Any, built_workspace: dict[str, Any], tmp_path: Path) -> Iterator[Any]:
    from fastapi.testclient import TestClient

    from serving.http import create_app

    settings = load_settings(
        {**built_workspace, "data_dir": str(tmp_path / "data"), "auth": auth_overrides()}
    )
    dp = make_dataplane(settings)
    with TestClient(create_app(dp), raise_server_exceptions=False) as c:
        yield c


def test_monitor_is_admin_only(client: Any) -> None:
    assert client.get("/v1/monitor").status_code == 401
    assert client.get("/v1/monitor", headers=bearer("reader")).status_code == 403
    assert client.get("/v1/monitor", headers=bearer("ops")).status_code == 200


@pytest.mark.parametrize(
    "query,field",
    [
        ("window_s=0", "window_s"),
        ("window_s=abc", "window_s"),
        ("window_s=999999", "window_s"),
        ("since=yesterday", "since"),
        ("since=2999-01-01T00:00:00Z", "since"),
        ("since=2000-01-01T00:00:00Z", "since"),
        ("since=2026-01-01T00:00:00Z&window_s=5", "window_s"),
    ],
)
def test_bad_windows_are_refused_naming_the_field(client: Any, query: str, field: str) -> None:
    r = client.get(f"/v1/monitor?{query}", headers=bearer("ops"))
    assert r.status_code == 422, r.text
    assert r.json()["error"]["field"] == field and r.json()["error"]["type"] == "invalid_request"


def test_the_answer_has_the_documented_shape(client: Any) -> None:
    r = client.post("/v1/score", json={"customer_ids": list(range(1, 1501))})
    assert r.status_code == 200
    body = client.get("/v1/monitor?window_s=60", headers=bearer("ops")).json()
    MonitorReport.model_validate(body)  # the schema OpenAPI declares
    assert set(body) >= {"window", "status", "thresholds", "models", "actions", "segments"}
    assert body["window"]["rows"] == 1500 and body["status"] == "ok"
    assert body["thresholds"] == {"psi": 0.2, "min_rows": 1000}
    churn = body["models"]["churn"]
    assert set(churn) >= {"version", "reference_rows", "score", "features"}
    assert set(churn["score"]) >= {"psi", "drift"}
    assert set(churn["features"][0]) == {
        "feature",
        "psi",
        "missing_rate",
        "out_of_range_rate",
        "drift",
    }
    assert (
        abs(sum(body["actions"]["share"].values()) - 1) < 1e-9
        and body["actions"]["min_propensity"] > 0
    )
    seg = body["segments"][0]
    assert set(seg) == {
        "feature",
        "value",
        "rows",
        "mean_churn",
        "contact_rate",
        "holdout_share",
        "contact_rate_ratio",
    }
    assert {s["feature"] for s in body["segments"]} == {"plan_tier", "region", "age_band"}
    assert sum(s["rows"] for s in body["segments"] if s["feature"] == "region") == 1500
    since = body["window"]["start"]
    again = client.get(f"/v1/monitor?since={since}", headers=bearer("ops")).json()
    assert again["window"]["start"] == since and again["window"]["rows"] == 1500
    assert np.isfinite(churn["score"]["psi"])


def test_version_metadata_links_the_model_card(client: Any, ws_settings: Any) -> None:
    meta = client.get("/v2/models/churn/versions/1").json()
    link = meta["parameters"]["model_card"]
    assert link == "/v2/models/churn/versions/1/card"
    r = client.get(link)
    assert r.status_code == 200
    assert r.json() == {
        "name": "churn",
        "version": "1",
        "format": "markdown",
        "text": (ws_settings.models.repo_path / "churn" / "1" / "card.md").read_text(),
    }
    assert client.get("/v2/models/churn").json()["parameters"]["model_card"] == link
    assert client.get("/v2/models/churn/versions/9/card").status_code == 404
    assert client.get("/v2/models/nope/versions/1/card").status_code == 404
