"""A draining server: new requests get our JSON 503 (Retry-After, Connection: close),
readiness is 503, liveness answers, and requests already inside run to the end."""

from __future__ import annotations

import asyncio

import pytest

from serving.drain import STATE, DrainState
from serving.middleware.drain import Drain


@pytest.fixture
def draining():
    yield STATE
    STATE.draining = False


def test_new_requests_get_a_json_503_while_draining(client, draining) -> None:
    assert client.post("/v1/score", json={"customer_ids": [1]}).status_code == 200
    draining.start()
    r = client.post("/v1/score", json={"customer_ids": [1]}, headers={"X-Request-ID": "d1"})
    assert r.status_code == 503 and r.json()["error"]["type"] == "draining"
    assert r.headers["retry-after"] == "1" and r.headers["connection"] == "close"
    assert r.headers["x-request-id"] == "d1"  # still logged and traced
    ready = client.get("/v2/health/ready")
    assert ready.status_code == 503 and ready.json() == {"ready": False}
    assert client.get("/v2/health/live").status_code == 200


def test_requests_inside_finish_and_are_counted() -> None:
    state = DrainState()
    release = asyncio.Event()
    sent: list[dict] = []

    async def slow_app(scope, receive, send) -> None:
        await release.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    async def send(message: dict) -> None:
        sent.append(message)

    async def scenario() -> None:
        app = Drain(slow_app, state)
        scope = {"type": "http", "path": "/v1/score", "method": "POST", "headers": []}
        inside = asyncio.create_task(app(scope, None, send))
        await asyncio.sleep(0)
        assert state.inflight == 1
        state.start()
        await app(dict(scope), None, send)  # a new one: refused at once
        assert sent[0]["status"] == 503
        release.set()
        await inside
        assert sent[-2]["status"] == 200 and state.inflight == 0

    asyncio.run(scenario())
