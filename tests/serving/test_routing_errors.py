"""Starlette's own answers (no such route, a method the route lacks) are our JSON error,
not FastAPI's ``{"detail": ...}`` (issue 12, item 3: every error any route gives)."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient


def test_unknown_route_and_wrong_method_answer_our_error(model_repo: Path, tmp_path: Path) -> None:
    from serving.components.models import ModelService
    from serving.dataplane import DataPlane
    from serving.http import create_app
    from serving.settings import load_settings
    from tests.serving.conftest import LocalFeatures, TableReader

    settings = load_settings({"models": {"repo_path": str(model_repo)}, "data_dir": str(tmp_path)})
    models = {n: ModelService(n, settings.models) for n in ("churn", "engagement")}
    plane = DataPlane(settings, LocalFeatures(TableReader()), models, None)
    with TestClient(create_app(plane), raise_server_exceptions=False) as client:
        missing = client.get("/nope")
        wrong = client.get("/v1/score")
        v2_wrong = client.delete("/v2/models/churn")
    assert missing.status_code == 404
    assert missing.json() == {
        "error": {"type": "not_found", "message": "no route GET /nope", "field": None}
    }
    assert wrong.status_code == 405 and "POST" in wrong.headers["allow"]
    assert wrong.json()["error"]["type"] == "method_not_allowed"
    # /v2 keeps the Open Inference Protocol's {"error": str} (tritonclient parses it)
    assert v2_wrong.status_code == 405 and v2_wrong.json()["error_type"] == "method_not_allowed"
