"""``POST /v1/score`` through the fast path answers exactly what FastAPI's route answers:
status, headers and body, for good input, every kind of bad input and a failing dependency;
and it really skips FastAPI's route handling."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from feature_store.errors import OnlineStoreUnavailable
from serving import metrics
from serving.components.models import ModelService
from serving.dataplane import DataPlane
from serving.http import create_app
from serving.settings import load_settings
from tests.serving.conftest import LocalFeatures, TableReader, admin_headers

CASES: list[tuple[str, dict[str, str]]] = [
    ('{"customer_ids": [1, 2, 3]}', {}),
    ('{"customer_ids": [5, -1, 99999, 5]}', {}),
    ('{"customer_ids": [7], "explain": 2}', {}),
    ('{"customer_ids": [7]}', {"accept": "application/vnd.apache.arrow.stream"}),
    ('{"customer_ids": []}', {}),
    ('{"customer_ids": [1, "x"]}', {}),
    ('{"customer_ids": [1], "extra": true}', {}),
    ('{"ids": [1]}', {}),
    ('{"customer_ids": [1', {}),
    ("", {}),
    ('{"customer_ids": [' + ", ".join(["1"] * 10_001) + "]}", {}),
]


class Failing(LocalFeatures):
    async def lookup(self, entity_ids: np.ndarray) -> Any:
        raise OnlineStoreUnavailable("feature store (test)", "connection refused")


def clients(
    model_repo: Path, tmp_path: Path, features: Any
) -> Iterator[tuple[TestClient, TestClient]]:
    """The same dataplane behind an app with the fast path and one without."""
    base = {
        "models": {"repo_path": str(model_repo)},
        "data_dir": str(tmp_path / "data"),
        "bandit": {"enabled": False},
    }
    settings = load_settings(base)
    dataplane = DataPlane(
        settings, features, {n: ModelService(n, settings.models) for n in ("churn", "engagement")}
    )
    slow_settings = load_settings({**base, "server": {"fast_path": False}})
    slow_plane = DataPlane(slow_settings, features, dataplane.models)
    headers = admin_headers(settings)
    with (
        TestClient(create_app(dataplane), raise_server_exceptions=False, headers=headers) as fast,
        TestClient(create_app(slow_plane), raise_server_exceptions=False, headers=headers) as slow,
    ):
        yield fast, slow


@pytest.fixture
def pair(model_repo: Path, tmp_path: Path) -> Iterator[tuple[TestClient, TestClient]]:
    yield from clients(model_repo, tmp_path, LocalFeatures(TableReader()))


def same(fast: TestClient, slow: TestClient, body: str, headers: dict[str, str]) -> int:
    a = fast.post(
        "/v1/score", content=body, headers={"content-type": "application/json", **headers}
    )
    b = slow.post(
        "/v1/score", content=body, headers={"content-type": "application/json", **headers}
    )
    assert a.status_code == b.status_code, body[:60]
    drop = {"x-request-id", "date", "content-length"}
    assert {k: v for k, v in a.headers.items() if k not in drop} == {
        k: v for k, v in b.headers.items() if k not in drop
    }, body[:60]
    assert comparable(a) == comparable(b), body[:60]
    return a.status_code


def comparable(r: Any) -> Any:
    """The body, less the one column that depends on the clock (``feature_age_s``)."""
    if r.headers["content-type"] == "application/vnd.apache.arrow.stream":
        import pyarrow as pa

        table = pa.ipc.open_stream(r.content).read_all()
        return table.drop_columns(["feature_age_s"]).to_pydict()
    doc = r.json()
    doc.pop("feature_age_s", None)
    return doc


@pytest.mark.parametrize(("body", "headers"), CASES, ids=range(len(CASES)))
def test_answers_match_fastapis_route(
    pair: tuple[TestClient, TestClient], body: str, headers: dict[str, str]
) -> None:
    same(*pair, body, headers)


def test_statuses_cover_success_and_each_error(pair: tuple[TestClient, TestClient]) -> None:
    assert {same(*pair, body, headers) for body, headers in CASES} == {
        200,
        400,
        409,
        422,
    }  # 409: explain on a version without an explainer


def test_a_failing_dependency_is_the_same_503(model_repo: Path, tmp_path: Path) -> None:
    for fast, slow in clients(model_repo, tmp_path, Failing(TableReader())):
        assert same(fast, slow, '{"customer_ids": [1]}', {}) == 503


def test_it_skips_fastapis_route_handling_and_is_counted_under_the_route(
    pair: tuple[TestClient, TestClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    handled: list[str] = []
    original = APIRoute.handle

    async def spy(self: APIRoute, scope: dict[str, Any], receive: Any, send: Any) -> None:
        handled.append(self.path)
        await original(self, scope, receive, send)

    monkeypatch.setattr(APIRoute, "handle", spy)
    fast, slow = pair
    metrics.RECORDER.drain()
    assert fast.post("/v1/score", json={"customer_ids": [1]}).status_code == 200
    assert fast.get("/v2/health/live").status_code == 200
    assert slow.post("/v1/score", json={"customer_ids": [1]}).status_code == 200
    assert handled == ["/v2/health/live", "/v1/score"]  # the fast app's score never reached FastAPI
    counts, _ = metrics.RECORDER.drain()
    assert counts[("reengage_requests_total", ("/v1/score", "200"))] == 2
