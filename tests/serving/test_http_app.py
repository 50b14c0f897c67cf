"""The app's shape as ``create_app`` builds it: FastAPI's own OpenTelemetry only when asked
for, and our routes matched before FastAPI's docs pages, which stay served."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from ray.serve._private.thirdparty.get_asgi_route_name import get_asgi_route_name

from serving.components.models import ModelService
from serving.dataplane import DataPlane
from serving.http import create_app
from serving.settings import load_settings
from tests.serving.conftest import LocalFeatures, TableReader, admin_headers


def client(model_repo: Path, tmp_path: Path, **server: Any) -> TestClient:
    settings = load_settings(
        {
            "models": {"repo_path": str(model_repo)},
            "data_dir": str(tmp_path / "data"),
            "bandit": {"enabled": False},
            "server": server,
        }
    )
    models = {name: ModelService(name, settings.models) for name in ("churn", "engagement")}
    app = create_app(DataPlane(settings, LocalFeatures(TableReader()), models))
    return TestClient(app, raise_server_exceptions=False, headers=admin_headers(settings))


@pytest.fixture
def spans(monkeypatch: pytest.MonkeyPatch) -> Iterator[InMemorySpanExporter]:
    """A configured global tracer provider (as an OTel user would set one), for this test only."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(trace, "get_tracer_provider", lambda: provider)
    yield exporter
    provider.shutdown()


def test_fastapi_telemetry_is_off_by_default(
    model_repo: Path, tmp_path: Path, spans: InMemorySpanExporter
) -> None:
    with client(model_repo, tmp_path) as c:
        assert c.post("/v1/score", json={"customer_ids": [1]}).status_code == 200
    assert spans.get_finished_spans() == ()


def test_fastapi_telemetry_traces_requests_when_on(
    model_repo: Path, tmp_path: Path, spans: InMemorySpanExporter
) -> None:
    with client(model_repo, tmp_path, fastapi_telemetry=True) as c:
        assert c.post("/v1/score", json={"customer_ids": [1]}).status_code == 200
    names = [span.name for span in spans.get_finished_spans()]
    assert any("/v1/score" in name for name in names), names


def test_our_routes_come_before_the_docs_pages_which_stay_served(
    model_repo: Path, tmp_path: Path
) -> None:
    with client(model_repo, tmp_path) as c:
        app = c.app
        paths = [getattr(route, "path", None) for route in app.routes]
        docs = [paths.index(p) for p in ("/openapi.json", "/docs", "/redoc")]
        assert min(docs) > 0 and paths[0] is None  # an included router of ours leads
        assert all(
            path in ("/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc")
            for path in paths[min(docs) :]
        )
        scope = {
            "type": "http",
            "method": "POST",
            "path": "/v1/score",
            "root_path": "",
            "headers": [],
        }
        assert get_asgi_route_name(app, scope) == "/v1/score"  # Serve's route label
        assert c.get("/docs").status_code == 200
        schema = c.get("/openapi.json").json()
        assert (
            list(schema["paths"])[0] == "/v1/score"
            and "/v2/models/{model_name}/infer" in schema["paths"]
        )
