"""Non-HTTP ASGI scopes: a WebSocket is refused unless the app declares a route for it, and
then needs its route group's token like HTTP; lifespan still runs; other scope types fail.

The real app (``serving.http.create_app``: every pure-ASGI middleware in place) over real
ONNX models and an embedded bandit, driven by Starlette's TestClient.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from fastapi import WebSocket
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from serving.http import create_app
from serving.middleware.auth import POLICY_VIOLATION
from tests.serving.authkit import auth_dataplane, bearer, make_settings


@pytest.fixture
def app(tmp_path: Path, model_repo: Path, reader: Any):  # type: ignore[no-untyped-def]
    """The shipped defaults (admin closed), plus one declared WebSocket route under /v1/admin."""
    settings = make_settings(tmp_path, model_repo)
    with auth_dataplane(settings, reader) as dataplane:
        app = create_app(dataplane)
        app.state.started = False

        @app.websocket("/v1/admin/echo")
        async def echo(ws: WebSocket) -> None:
            await ws.accept()
            await ws.send_text(await ws.receive_text())
            await ws.close()

        @app.on_event("startup")
        async def started() -> None:
            app.state.started = True

        yield app


def _refused(client: TestClient, path: str, **kw: Any) -> int:
    with pytest.raises(WebSocketDisconnect) as refused:
        with client.websocket_connect(path, **kw) as ws:
            ws.receive_text()
    return refused.value.code


@pytest.mark.parametrize(
    "path", ["/v1/score", "/v2/health/ready", "/v1/admin/rollout/churn", "/nowhere"]
)
def test_a_websocket_without_a_declared_route_is_refused(app, path: str) -> None:
    with TestClient(app) as client:
        assert _refused(client, path) == POLICY_VIOLATION
        assert (
            _refused(client, path, headers=bearer("ops")) == POLICY_VIOLATION
        )  # a token changes nothing


def test_a_declared_websocket_needs_its_groups_token(app) -> None:
    with TestClient(app) as client:
        assert _refused(client, "/v1/admin/echo") == POLICY_VIOLATION
        assert (
            _refused(client, "/v1/admin/echo", headers=bearer("reader")) == POLICY_VIOLATION
        )  # lacks admin
        with client.websocket_connect("/v1/admin/echo", headers=bearer("ops")) as ws:
            ws.send_text("hello")
            assert ws.receive_text() == "hello"
        assert (
            client.post("/v1/score", json={"customer_ids": [1]}).status_code == 200
        )  # HTTP as before


def test_lifespan_still_runs(app) -> None:
    with TestClient(app):
        assert app.state.started


def test_an_unknown_scope_type_is_refused(app) -> None:
    async def call() -> None:
        async def receive() -> dict[str, Any]:
            return {"type": "foo.start"}

        async def send(message: dict[str, Any]) -> None:
            raise AssertionError(f"nothing may be sent: {message}")

        await app({"type": "foo", "path": "/v1/score", "headers": []}, receive, send)

    with pytest.raises(RuntimeError, match="'foo' is not served"):
        asyncio.run(call())
