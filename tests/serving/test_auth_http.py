"""HTTP auth: every route group answers 401 without a token, 403 with a token lacking its
role, 200 with the right one; defaults are secure; refusals are our JSON error; the
OpenAPI schema declares the scheme; tokens stay out of logs; admin actions are audited."""

from __future__ import annotations

import json
import logging
import os
import stat
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from serving.protocol.v1 import ErrorResponse
from serving.protocol.v2 import OIPErrorResponse
from tests.serving.authkit import (
    ALL_TOKEN,
    RIGHT,
    TOKENS,
    WRONG,
    auth_client,
    bearer,
    make_settings,
)

INFER = {
    "inputs": [
        {"name": "features", "shape": [2, 3], "datatype": "FP32", "data": [1, 2, 3, 0, 0, 0]}
    ]
}

# (group, method, path, json body): every route of the app, one request each
REQUESTS: list[tuple[str, str, str, Any]] = [
    ("health", "get", "/v2/health/live", None),
    ("health", "get", "/v2/health/ready", None),
    ("health", "get", "/v2/models/churn/ready", None),
    ("health", "get", "/v2/models/churn/versions/1/ready", None),
    ("metadata", "get", "/v2", None),
    ("metadata", "get", "/v2/models/churn", None),
    ("metadata", "get", "/v2/models/churn/versions/1", None),
    ("metadata", "get", "/openapi.json", None),
    ("inference", "post", "/v1/score", {"customer_ids": [1, 2]}),
    ("inference", "post", "/v2/models/churn/infer", INFER),
    ("inference", "post", "/v2/models/churn/versions/1/infer", INFER),
    ("admin", "post", "/v2/repository/index", {}),
]


@pytest.fixture
def closed(tmp_path: Path, model_repo: Path, reader: Any):  # type: ignore[no-untyped-def]
    """Every group needs a token."""
    settings = make_settings(tmp_path, model_repo, ALL_TOKEN)
    with auth_client(settings, reader) as client:
        client.settings = settings
        yield client


@pytest.fixture
def default(tmp_path: Path, model_repo: Path, reader: Any):  # type: ignore[no-untyped-def]
    """The shipped defaults: admin and feedback closed, the rest open."""
    settings = make_settings(tmp_path, model_repo)
    with auth_client(settings, reader) as client:
        client.settings = settings
        yield client


def _error(r: Any) -> tuple[str, str | None]:
    if r.request.url.path.startswith("/v2"):
        body = OIPErrorResponse.model_validate(r.json())
        return body.error_type, body.field  # type: ignore[return-value]
    err = ErrorResponse.model_validate(r.json()).error
    return err.type, err.field


@pytest.mark.parametrize(
    "group,method,path,body", REQUESTS, ids=[f"{g}:{p}" for g, _, p, _ in REQUESTS]
)
def test_every_route_401_403_200_when_its_group_is_closed(
    closed, group: str, method: str, path: str, body: Any
) -> None:
    kwargs = {"json": body} if body is not None else {}
    missing = getattr(closed, method)(path, **kwargs)
    assert missing.status_code == 401, missing.text
    assert _error(missing) == ("unauthenticated", "authorization")
    assert missing.headers["www-authenticate"].startswith("Bearer")
    wrong = getattr(closed, method)(path, headers=bearer(WRONG[group]), **kwargs)
    assert wrong.status_code == 403, wrong.text
    assert _error(wrong) == ("permission_denied", "authorization")
    assert (
        f"'{group}'" in wrong.text and WRONG[group] in wrong.text
    )  # names the role and the token's name
    right = getattr(closed, method)(path, headers=bearer(RIGHT[group]), **kwargs)
    assert right.status_code == 200, right.text


def test_feedback_401_403_200(closed) -> None:
    score = closed.post(
        "/v1/score", json={"customer_ids": [1, 2, 3]}, headers=bearer("reader")
    ).json()
    decision = {"decision_id": score["decision_id"][0], "reward": 1.0}
    assert closed.post("/v1/feedback", json=decision).status_code == 401
    assert closed.post("/v1/feedback", json=decision, headers=bearer("reader")).status_code == 403
    r = closed.post("/v1/feedback", json=decision, headers=bearer("crm"))
    assert r.status_code == 200, r.text and r.json()["decision_id"] == decision["decision_id"]


@pytest.mark.parametrize("path", ["/v1/reengage", "/v1/completions", "/v1/models"])
def test_llm_routes_are_grouped(closed, path: str) -> None:
    """inference (reengage, completions) and metadata (models): refused without a token,
    past the check with the right one (503 here: this app has no writer)."""
    method = closed.get if path == "/v1/models" else closed.post
    body = (
        {}
        if path == "/v1/models"
        else {
            "json": {"customer_id": 1}
            if path == "/v1/reengage"
            else {"model": "email_writer", "prompt": "hi"}
        }
    )
    assert method(path, **body).status_code == 401
    assert method(path, headers=bearer("crm"), **body).status_code == 403
    assert method(path, headers=bearer("reader"), **body).status_code == 503


def test_repository_load_unload_401_403_200_and_audited(closed) -> None:
    for action in ("unload", "load"):
        path = f"/v2/repository/models/engagement/{action}"
        refused = closed.post(path)
        assert refused.status_code == 401 and refused.json()["error_type"] == "unauthenticated"
        assert closed.post(path, headers=bearer("reader")).status_code == 403
        assert closed.post(path, headers=bearer("ops")).status_code == 200
    entries = [json.loads(line) for line in closed.settings.auth.audit_log.read_text().splitlines()]
    assert [(e["actor"], e["action"], e["model"], e["result"]) for e in entries] == [
        ("anonymous", "POST /v2/repository/models/engagement/unload", None, "denied"),
        ("reader", "POST /v2/repository/models/engagement/unload", None, "denied"),
        ("ops", "repository.unload", "engagement", "ok"),
        ("anonymous", "POST /v2/repository/models/engagement/load", None, "denied"),
        ("reader", "POST /v2/repository/models/engagement/load", None, "denied"),
        ("ops", "repository.load", "engagement", "ok"),
    ]
    assert entries[-1]["details"] == {"versions": ["1"]} and entries[2]["time"].endswith("Z")
    assert entries[0]["message"].startswith("401 unauthenticated")
    assert stat.S_IMODE(os.stat(closed.settings.auth.audit_log).st_mode) == 0o600


def test_defaults_close_feedback_and_admin_only(default) -> None:
    assert default.get("/v2/health/ready").status_code == 200
    assert default.get("/v2/models/churn").status_code == 200
    score = default.post("/v1/score", json={"customer_ids": [1]})
    assert score.status_code == 200
    assert default.post("/v2/models/churn/infer", json=INFER).status_code == 200
    decision = {"decision_id": score.json()["decision_id"][0], "reward": 0.0}
    assert default.post("/v1/feedback", json=decision).status_code == 401
    unload = default.post("/v2/repository/models/churn/unload")
    assert unload.status_code == 401, "an unauthenticated unload is refused"
    assert default.post("/v1/score", json={"customer_ids": [1]}).status_code == 200  # still serving
    assert (
        default.post("/v1/admin/anything").status_code == 401
    )  # any path of our API without a group: admin
    assert default.post("/v1/anything-new").status_code == 401
    assert default.get("/-/healthz").status_code == 404  # outside our API: left to the router
    assert default.post("/v1/feedback", json=decision, headers=bearer("crm")).status_code == 200


def test_unloaded_model_is_503_naming_it_and_unknown_model_stays_404(default) -> None:
    assert (
        default.post("/v2/repository/models/churn/unload", headers=bearer("ops")).status_code == 200
    )
    r = default.post("/v1/score", json={"customer_ids": [1]})
    assert r.status_code == 503, r.text
    err = ErrorResponse.model_validate(r.json()).error
    assert err.type == "model_not_ready" and "churn" in err.message
    assert default.post("/v2/models/churn/infer", json=INFER).status_code == 503
    unknown = default.post("/v2/models/nope/infer", json=INFER)
    assert unknown.status_code == 404 and unknown.json()["error_type"] == "model_not_found"
    assert (
        default.post("/v2/repository/models/churn/load", headers=bearer("ops")).status_code == 200
    )
    assert (
        default.post("/v2/models/churn/versions/9/infer", json=INFER).status_code == 404
    )  # the caller's version
    assert default.post("/v1/score", json={"customer_ids": [1]}).status_code == 200


def test_a_failed_admin_action_is_audited_as_an_error(default) -> None:
    r = default.post("/v2/repository/models/nope/unload", headers=bearer("ops"))
    assert r.status_code == 404
    last = json.loads(default.settings.auth.audit_log.read_text().splitlines()[-1])
    assert (last["actor"], last["action"], last["model"], last["result"]) == (
        "ops",
        "repository.unload",
        "nope",
        "error",
    )
    assert last["message"].startswith("404 model_not_found")


@pytest.mark.parametrize(
    "header", ["Basic b3BzOnNlY3JldA==", "Bearer", "Bearer    ", "rng_x", "Bearer rng_unknown"]
)
def test_malformed_or_unknown_tokens_are_401(default, header: str) -> None:
    r = default.post("/v2/repository/index", headers={"Authorization": header})
    assert r.status_code == 401 and r.json()["field"] == "authorization"


def test_scheme_is_case_insensitive(default) -> None:
    token = TOKENS["ops"][0]
    assert (
        default.post(
            "/v2/repository/index", headers={"Authorization": f"bearer {token}"}
        ).status_code
        == 200
    )


def test_groups_come_from_the_environment(
    tmp_path: Path, model_repo: Path, reader: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REENGAGE_AUTH__GROUPS__INFERENCE", "token")
    monkeypatch.setenv("REENGAGE_AUTH__GROUPS__ADMIN", "open")
    settings = make_settings(tmp_path, model_repo)
    assert settings.auth.groups.inference == "token" and settings.auth.groups.admin == "open"
    with auth_client(settings, reader) as client:
        assert client.post("/v1/score", json={"customer_ids": [1]}).status_code == 401
        assert (
            client.post(
                "/v1/score", json={"customer_ids": [1]}, headers=bearer("reader")
            ).status_code
            == 200
        )
        assert client.post("/v2/repository/models/churn/load").status_code == 200  # admin opened
        assert (
            client.post("/v2/repository/models/churn/load", headers=bearer("ops")).status_code
            == 200
        )
    actors = [json.loads(x)["actor"] for x in settings.auth.audit_log.read_text().splitlines()]
    assert actors == [
        "anonymous",
        "ops",
    ]  # an open admin group still names a caller who sent a token


def test_open_routes_never_reach_the_token_check(default) -> None:
    """The hot path: an open group costs a dict lookup, no hashing, no header parsing."""
    app = default.app
    while not hasattr(app, "auth"):  # the middleware, once the stack is built
        default.get("/v2/health/live")
        app = next(m for m in _stack(default.app) if hasattr(m, "auth"))

    class Tripwire:
        protected = app.auth.protected

        def check(self, *a: Any) -> None:
            raise AssertionError("checked an open route")

        identify = check

    app.auth = Tripwire()
    assert (
        default.post("/v1/score", json={"customer_ids": [1]}, headers=bearer("crm")).status_code
        == 200
    )
    assert default.get("/v2/models/churn").status_code == 200


def _stack(app: Any) -> list[Any]:
    out, node = [], app.middleware_stack
    while node is not None:
        out.append(node)
        node = getattr(node, "app", None)
    return out


def test_openapi_declares_the_bearer_scheme_on_protected_routes(default) -> None:
    spec = default.get("/openapi.json").json()
    assert spec["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "description": spec["components"]["securitySchemes"]["bearerAuth"]["description"],
    }
    paths = spec["paths"]
    feedback = paths["/v1/feedback"]["post"]
    assert feedback["security"] == [{"bearerAuth": []}] and feedback["x-route-group"] == "feedback"
    assert feedback["responses"]["401"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/ErrorResponse"
    )
    assert feedback["responses"]["403"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/ErrorResponse"
    )
    unload = paths["/v2/repository/models/{model_name}/unload"]["post"]
    assert unload["security"] == [{"bearerAuth": []}] and unload["x-route-group"] == "admin"
    assert unload["responses"]["401"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/OIPErrorResponse"
    )
    score = paths["/v1/score"]["post"]
    assert (
        "security" not in score
        and "401" not in score["responses"]
        and score["x-route-group"] == "inference"
    )
    groups = {op["x-route-group"] for ops in paths.values() for op in ops.values()}
    assert groups == {"health", "metadata", "inference", "feedback", "admin"}


def test_tokens_never_reach_the_logs(closed, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    for name in TOKENS:
        for path in ("/v1/score", "/v2/repository/index", "/v2/repository/models/nope/unload"):
            closed.post(path, json={"customer_ids": [1]}, headers=bearer(name))
    closed.post(
        "/v1/score",
        json={"customer_ids": [1]},
        headers={"Authorization": "Bearer rng_wrong-secret-value"},
    )
    text = caplog.text + closed.settings.auth.audit_log.read_text()
    for token, _ in TOKENS.values():
        assert token not in text and token.split("-", 1)[1] not in text
    assert "rng_wrong-secret-value" not in text


def test_shared_state_tokens_reach_a_running_app_within_a_second(default) -> None:
    import time

    from serving.security import TokenBook
    from serving.shared_state import open_shared_state

    book = TokenBook(open_shared_state(default.settings))
    headers = {"Authorization": "Bearer " + book.create("deployer", ["admin"])}

    def within_1s(status: int) -> bool:
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            if default.post("/v2/repository/index", headers=headers).status_code == status:
                return True
            time.sleep(0.02)
        return False

    assert within_1s(200)
    assert book.revoke("deployer")
    assert within_1s(401)
    book.state.close()


def test_a_refusal_is_counted_under_its_route(closed) -> None:
    from serving import metrics

    metrics.RECORDER.drain()
    closed.post("/v1/feedback", json={"decision_id": "x", "reward": 1})
    counts, _ = metrics.RECORDER.drain()
    assert counts[("reengage_requests_total", ("/v1/feedback", "401"))] == 1


def test_a_route_prefix_is_stripped_before_the_group_is_found(
    tmp_path: Path, model_repo: Path, reader: Any
) -> None:
    """Serve mounts an application under its route prefix (root_path): /split/v1/feedback."""
    from fastapi.testclient import TestClient

    from serving.http import create_app
    from tests.serving.authkit import auth_dataplane

    settings = make_settings(tmp_path, model_repo)
    with (
        auth_dataplane(settings, reader) as dp,
        TestClient(create_app(dp), root_path="/split", raise_server_exceptions=False) as client,
    ):
        assert (
            client.post("/split/v1/feedback", json={"decision_id": "x", "reward": 1}).status_code
            == 401
        )
        assert client.post("/split/v1/score", json={"customer_ids": [1]}).status_code == 200


def test_v1_score_still_answers_numbers(default) -> None:
    body = default.post("/v1/score", json={"customer_ids": [1, 2]}).json()
    assert np.all(np.array(body["churn_probability"]) > 0)


@pytest.mark.parametrize(
    "path,group",
    [
        ("/v1/score", "inference"),
        ("/v1/explain", "inference"),
        ("/v1/reengage", "inference"),
        ("/v1/completions", "inference"),
        ("/v2/models/churn/infer", "inference"),
        ("/v2/models/churn/versions/3/infer", "inference"),
        ("/v2/models/{model_name}/infer", "inference"),
        ("/v1/feedback", "feedback"),
        ("/v2/health/ready", "health"),
        ("/v2/models/churn/ready", "health"),
        ("/v2", "metadata"),
        ("/v2/models/churn", "metadata"),
        ("/v1/models", "metadata"),
        ("/openapi.json", "metadata"),
        ("/v2/repository/index", "admin"),
        ("/v2/repository/models/churn/unload", "admin"),
        ("/v1/admin/rollout/churn/promote", "admin"),
        # anything else under our API is closed: a trailing slash, an extra segment, a new route
        ("/v1/feedback/", "admin"),
        ("/v2/models/churn/infer/", "admin"),
        ("/v2/models/a/b/infer", "admin"),
        ("/v1/rollouts", "admin"),
        ("/v2/repository", "admin"),
        ("/-/healthz", None),
        ("/", None),
        ("/favicon.ico", None),
    ],
)
def test_every_path_has_one_group(path: str, group: str | None) -> None:
    from serving.security import group_of_path

    assert group_of_path(path) == group
