"""X-Request-ID accepted or made, echoed, and one JSON log line per request, without
bodies, feature values or tokens; nothing formatted when the logger is off."""

from __future__ import annotations

import io
import json
import sys

import pytest

from serving import request_log
from serving.middleware.request_log import RequestLog


@pytest.fixture
def lines():
    """The request log's JSON lines for one test."""
    stream = io.StringIO()
    request_log.configure(True, stream=stream)
    yield lambda: [json.loads(x) for x in stream.getvalue().splitlines()]
    request_log.configure(True, stream=sys.__stderr__)


def test_request_id_is_made_echoed_and_logged_with_route_status_customers_versions(
    client, lines
) -> None:
    r = client.post("/v1/score", json={"customer_ids": [1, 2, 3]})
    assert r.status_code == 200
    rid = r.headers["x-request-id"]
    assert len(rid) == 16 and int(rid, 16) >= 0
    [line] = lines()
    assert line["request_id"] == rid and line["msg"] == "request" and line["level"] == "INFO"
    assert (line["method"], line["route"], line["status"], line["customers"]) == (
        "POST",
        "/v1/score",
        200,
        3,
    )
    assert line["model_versions"] == r.json()["model_versions"] and line["latency_ms"] > 0
    text = json.dumps(line)
    token = client.headers["authorization"].split()[-1]
    assert token not in text and "customer_ids" not in text and "authorization" not in text.lower()
    assert set(line) <= {
        "ts",
        "level",
        "msg",
        "request_id",
        "method",
        "route",
        "status",
        "latency_ms",
        "customers",
        "model_versions",
    }  # no feature values, no body


def test_a_callers_request_id_is_kept_and_a_bad_one_replaced(client, lines) -> None:
    r = client.get("/v2/health/live", headers={"X-Request-ID": "trace-abc-123"})
    assert r.headers["x-request-id"] == "trace-abc-123"
    bad = client.get("/v2/health/live", headers={"X-Request-ID": "two words\x01" + "x" * 200})
    assert bad.headers["x-request-id"] != "two words" and len(bad.headers["x-request-id"]) == 16
    assert [x["request_id"] for x in lines()] == ["trace-abc-123", bad.headers["x-request-id"]]


def test_errors_are_logged_with_their_status_and_id(client, lines) -> None:
    r = client.post("/v1/score", json={"customer_ids": []}, headers={"X-Request-ID": "e1"})
    missing = client.get("/v2/models/nope", headers={"X-Request-ID": "e2"})
    assert (r.status_code, r.headers["x-request-id"]) == (422, "e1") and missing.headers[
        "x-request-id"
    ] == "e2"
    got = {x["request_id"]: x for x in lines()}
    assert got["e1"]["status"] == 422 and got["e1"]["route"] == "/v1/score"
    assert (
        got["e2"]["status"] == missing.status_code
        and got["e2"]["route"] == "/v2/models/{model_name}"
    )


def test_logger_off_no_line_but_the_id_is_still_echoed(client, lines) -> None:
    request_log.configure(False)
    r = client.post("/v1/score", json={"customer_ids": [1]}, headers={"X-Request-ID": "quiet"})
    assert r.status_code == 200 and r.headers["x-request-id"] == "quiet" and lines() == []
    request_log.configure(True)  # back on: to the same stream
    client.post("/v1/score", json={"customer_ids": [1]}, headers={"X-Request-ID": "loud"})
    assert [x["request_id"] for x in lines()] == ["loud"]


def test_inside_serve_the_id_is_serves_and_not_echoed_twice(lines) -> None:
    """Serve's RequestIdMiddleware puts x-request-id in the request and echoes it itself."""
    import asyncio

    sent: list[dict] = []

    async def app(scope, receive, send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "GET",
        "path": "/v2",
        "headers": [(b"x-request-id", b"serve-made-id")],
    }
    asyncio.run(RequestLog(app, echo=False)(scope, None, send))
    assert sent[0]["headers"] == []  # not added a second time
    [line] = lines()
    assert line["request_id"] == "serve-made-id" and line["status"] == 200
