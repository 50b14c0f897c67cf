from __future__ import annotations

import pickle

import pytest

from serving.errors import Conflict, DecisionNotFound, DependencyUnavailable, InvalidRequest, status_and_body


@pytest.mark.parametrize("exc,status", [
    (InvalidRequest("bad", field="customer_ids"), 422),
    (DecisionNotFound("gone", field="decision_id"), 404),
    (Conflict("twice", field="decision_id"), 409),
    (DependencyUnavailable("feature store (redis) is down"), 503),
])
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

