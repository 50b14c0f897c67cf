from __future__ import annotations

import pickle

import pytest

from serving.errors import (
    Conflict,
    DecisionNotFound,
    DependencyUnavailable,
    InvalidRequest,
    status_and_body,
)


@pytest.mark.parametrize(
    "exc,status",
    [
        (InvalidRequest("bad", field="customer_ids"), 422),
        (DecisionNotFound("gone", field="decision_id"), 404),
        (Conflict("twice", field="decision_id"), 409),
        (DependencyUnavailable("feature store (redis) is down"), 503),
    ],
)
def test_errors_pickle_and_map_to_their_status(exc: Exception, status: int) -> None:
    clone = pickle.loads(pickle.dumps(exc))  # they cross Ray handles
    assert type(clone) is type(exc) and clone.field == exc.field
    code, body = status_and_body(clone)
    assert code == status
    assert body["error"]["message"] == exc.message and body["error"]["field"] == exc.field


def test_unknown_exception_is_500_without_traceback() -> None:
    code, body = status_and_body(RuntimeError("secret internals"))
    assert code == 500 and "secret" not in body["error"]["message"]


def test_ray_task_error_is_unwrapped_to_the_callers_mistake() -> None:
    from ray.exceptions import RayTaskError

    try:
        raise InvalidRequest("bad id", field="customer_ids")
    except InvalidRequest as cause:
        wrapped = RayTaskError("score", "traceback text", cause)
    code, body = status_and_body(wrapped)
    assert code == 422 and body["error"]["field"] == "customer_ids"


def test_ray_backpressure_is_a_503_naming_it() -> None:
    from serving.errors import status_and_body

    class BackPressureError(Exception):  # Ray Serve's name when a replica's queue is full
        pass

    status, body = status_and_body(BackPressureError("queue full"))
    assert status == 503 and body["error"]["type"] == "dependency_unavailable"
    assert "BackPressureError" in body["error"]["message"]


def test_an_overloaded_bandit_answers_503_with_retry_after_over_http(model_repo) -> None:
    from fastapi.testclient import TestClient

    from serving.components.models import ModelService
    from serving.dataplane import DataPlane
    from serving.errors import Overloaded
    from serving.http import create_app
    from serving.settings import load_settings
    from tests.serving.conftest import LocalFeatures, TableReader

    class FullBandit:
        async def decide(self, *args: object) -> None:
            raise Overloaded("the bandit decision log is behind", retry_after_s=2.0)

        async def feedback(self, decision_id: str, reward: float) -> dict:
            raise Overloaded("the bandit decision log is behind", retry_after_s=2.0)

        async def close(self) -> None:
            pass

    settings = load_settings({"models": {"repo_path": str(model_repo)}})
    models = {n: ModelService(n, settings.models) for n in ("churn", "engagement")}
    plane = DataPlane(settings, LocalFeatures(TableReader()), models, FullBandit())  # type: ignore[arg-type]
    with TestClient(create_app(plane), raise_server_exceptions=False) as client:
        r = client.post("/v1/score", json={"customer_ids": [1, 2]})
    assert r.status_code == 503 and r.headers["retry-after"] == "2"
    assert r.json()["error"]["type"] == "overloaded"
