from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from serving.protocol.v1 import ErrorResponse, FeedbackResponse, ReengageResponse, ScoreResponse
from tests.serving.conftest import LocalFeatures, TableReader, admin_headers


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-z))


def test_score_is_columnar_in_request_order_with_unknown_ids_null(
    client, reader: TableReader
) -> None:
    ids = [5, 3, 1_000_000, 0]
    r = client.post("/v1/score", json={"customer_ids": ids})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["customer_ids"] == ids
    assert body["found"] == [True, True, False, True]
    x = reader.table[[5, 3, 0]]
    churn = _sigmoid(x @ np.array([2.0, -0.5, 0.0]) - 0.2)  # churn v2 is the default
    eng = _sigmoid(x[:, [2, 0]] @ np.array([0.3, 0.7]))  # engagement reads (c, a)
    got_churn = [body["churn_probability"][i] for i in (0, 1, 3)]
    np.testing.assert_allclose(got_churn, churn, rtol=1e-5)
    np.testing.assert_allclose(
        [body["engagement_probability"][i] for i in (0, 1, 3)], eng, rtol=1e-5
    )
    assert body["churn_probability"][2] is None and body["engagement_probability"][2] is None
    assert body["feature_age_s"][2] is None and body["feature_age_s"][0] > 0
    assert body["model_versions"] == {"churn": "2", "engagement": "1"}
    assert body["action"] == [None] * 4  # bandit disabled in this app
    ScoreResponse.model_validate(body)  # the declared type is exactly what is sent


@pytest.mark.parametrize(
    "payload,field",
    [
        ({}, "customer_ids"),
        ({"customer_ids": []}, "customer_ids"),
        ({"customer_ids": [1, "x"]}, "customer_ids[1]"),
        ({"customer_ids": [1, 2.5]}, "customer_ids[1]"),
        ({"customer_ids": [True]}, "customer_ids[0]"),
        ({"customer_ids": [-1]}, "customer_ids[0]"),
        ({"customer_ids": list(range(10_001))}, "customer_ids"),
        ({"customer_ids": [1], "extra": 1}, "extra"),
        ({"customer_ids": "1,2"}, "customer_ids"),
    ],
)
def test_score_rejects_bad_input_naming_the_field(client, payload: dict, field: str) -> None:
    r = client.post("/v1/score", json=payload)
    assert r.status_code == 422, r.text
    err = ErrorResponse.model_validate(r.json()).error
    assert err.field == field and err.type == "invalid_request" and err.message


def test_malformed_json_is_400(client) -> None:
    r = client.post("/v1/score", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 400
    assert r.json()["error"]["type"] == "malformed_body"


def test_10000_ids_are_accepted(client) -> None:
    r = client.post("/v1/score", json={"customer_ids": list(range(10_000))})
    assert r.status_code == 200
    assert sum(r.json()["found"]) == 100


def test_feedback_without_bandit_is_503_naming_it(client) -> None:
    r = client.post("/v1/feedback", json={"decision_id": "abc", "reward": 1})
    assert r.status_code == 503, r.text  # a server-side state, not the caller's unknown id
    err = ErrorResponse.model_validate(r.json()).error
    assert err.type == "dependency_unavailable" and "bandit" in err.message and err.field is None
    bad = client.post("/v1/feedback", json={"decision_id": "abc", "reward": "high"})
    assert bad.status_code == 422 and bad.json()["error"]["field"].startswith("reward")


class ContactFeatures(LocalFeatures):
    async def contact(self, entity_id: int, service: str = "email_writer") -> dict[str, Any]:
        return {"last_contact_days": 3}


class FakeWriter:
    """What ``WriterService.write`` returns, without an LLM."""

    async def write(
        self,
        facts: dict[str, Any],
        action: str,
        scores: dict[str, Any],
        max_tokens: int | None,
        temperature: float | None,
        adapter: str | None = None,
    ) -> dict[str, Any]:
        written = action != "no_contact"
        return {
            "subject": f"about {action}",
            "body": "hello",
            "written": written,
            "backend": "fake",
            "model": "tiny",
            "fallback": False,
            "fallback_reason": None,
            "completion_tokens": 5,
            "adapter": adapter,
        }


@pytest.fixture
def full_client(model_repo: Path, reader: TableReader, tmp_path: Path) -> Iterator[Any]:
    """The app with the bandit (embedded state) and a fake email writer."""
    from fastapi.testclient import TestClient

    from serving.components.models import ModelService
    from serving.dataplane import DataPlane
    from serving.http import create_app
    from serving.components.bandit import BanditService
    from serving.settings import load_settings

    settings = load_settings(
        {
            "models": {"repo_path": str(model_repo)},
            "data_dir": str(tmp_path / "data"),
            "bandit": {
                "state_path": str(tmp_path / "bandit"),
                "seed": 0,
                "sync_interval_s": 0,
                "holdout_share": 0.3,
            },
        }
    )
    models = {name: ModelService(name, settings.models) for name in ("churn", "engagement")}
    bandit = BanditService(settings.bandit)
    dataplane = DataPlane(
        settings, ContactFeatures(reader), models, bandit=bandit, writer=FakeWriter()
    )
    with TestClient(
        create_app(dataplane), raise_server_exceptions=False, headers=admin_headers(settings)
    ) as c:
        yield c
    bandit.router.close()


def test_answers_with_the_bandit_are_exactly_the_declared_types(full_client) -> None:
    score = full_client.post("/v1/score", json={"customer_ids": list(range(40)) + [10**9]})
    assert score.status_code == 200, score.text
    body = ScoreResponse.model_validate(score.json())
    assert body.found[-1] is False and body.action[-1] is None and body.reason[-1] == "not_found"
    assert {"policy", "holdout"} <= set(body.reason[:-1])
    chosen = body.reason.index("policy")
    fb = full_client.post(
        "/v1/feedback", json={"decision_id": body.decision_id[chosen], "reward": 1}
    )
    assert fb.status_code == 200, fb.text
    recorded = FeedbackResponse.model_validate(fb.json())
    assert recorded.reward == 1.0 and recorded.action == body.action[chosen]
    assert recorded.reason == "policy" and recorded.policy_updated
    held = body.reason.index("holdout")
    fb = full_client.post("/v1/feedback", json={"decision_id": body.decision_id[held], "reward": 0})
    held_fb = FeedbackResponse.model_validate(fb.json())
    assert (
        held_fb.reason == "holdout"
        and held_fb.action == "no_contact"
        and not held_fb.policy_updated
    )
    again = full_client.post(
        "/v1/feedback", json={"decision_id": body.decision_id[chosen], "reward": 1}
    )
    assert (
        again.status_code == 409
        and ErrorResponse.model_validate(again.json()).error.type == "conflict"
    )
    unknown = full_client.post(
        "/v1/feedback", json={"decision_id": "0123456789abcdef-0", "reward": 1}
    )
    assert unknown.status_code == 404
    assert ErrorResponse.model_validate(unknown.json()).error.field == "decision_id"


def test_reengage_answer_is_exactly_the_declared_type(full_client) -> None:
    r = full_client.post("/v1/reengage", json={"customer_id": 7, "action": "discount_offer"})
    assert r.status_code == 200, r.text
    answer = ReengageResponse.model_validate(r.json())
    assert answer.customer_id == 7 and answer.reason == "forced" and answer.decision_id is None
    assert answer.subject == "about discount_offer" and answer.llm.written
    r = full_client.post("/v1/reengage", json={"customer_id": 7, "action": "no_contact"})
    quiet = ReengageResponse.model_validate(r.json())
    assert quiet.subject is None and quiet.body is None and not quiet.llm.written
    chosen = ReengageResponse.model_validate(
        full_client.post("/v1/reengage", json={"customer_id": 8}).json()
    )
    assert chosen.reason in ("policy", "holdout", "contact_cap") and chosen.decision_id
    missing = full_client.post("/v1/reengage", json={"customer_id": 10**9})
    assert missing.status_code == 404
    assert ErrorResponse.model_validate(missing.json()).error.field == "customer_id"


def _ref(response: dict[str, Any], media: str = "application/json") -> str:
    return response["content"][media]["schema"]["$ref"].rsplit("/", 1)[-1]


def test_openapi_declares_every_answer_and_error(client) -> None:
    spec = client.get("/openapi.json").json()
    schemas = spec["components"]["schemas"]
    assert "HTTPValidationError" not in schemas  # FastAPI's own 422 body, which we never send
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            where = f"{method.upper()} {path}"
            error = "OIPErrorResponse" if path.startswith("/v2") else "ErrorResponse"
            answers = op["responses"]
            assert _ref(answers["200"]) in schemas, where
            assert "default" in answers, where  # an unexpected failure: 500 with the error body
            for status, answer in answers.items():
                if status != "200" and not _ref(answer).endswith("ReadyResponse"):
                    assert _ref(answer) == error, (where, status)
            if method == "post" and "/repository/models/" not in path:
                assert "application/json" in op["requestBody"]["content"], where
    paths = spec["paths"]
    assert {"400", "422", "503"} <= set(paths["/v1/score"]["post"]["responses"])
    assert {"404", "409", "503"} <= set(paths["/v1/feedback"]["post"]["responses"])
    assert _ref(paths["/v1/feedback"]["post"]["responses"]["200"]) == "FeedbackResponse"
    assert _ref(paths["/v2/health/ready"]["get"]["responses"]["503"]) == "ServerReadyResponse"
    infer = paths["/v2/models/{model_name}/infer"]["post"]
    assert "application/octet-stream" in infer["responses"]["200"]["content"]
    assert "application/octet-stream" in infer["requestBody"]["content"]
    # what is always sent is required; nothing else is declared (extra="forbid")
    assert set(schemas["FeedbackResponse"]["required"]) == {
        "decision_id",
        "reward",
        "action",
        "reason",
        "policy_updated",
    }
    assert "recorded" not in schemas["FeedbackResponse"]["properties"]
    for answer in (
        ScoreResponse,
        ReengageResponse,
    ):  # optional fields (explanations, reasons) come on request
        always = {name for name, f in answer.model_fields.items() if f.is_required()}
        assert set(schemas[answer.__name__]["required"]) == always
    assert (
        _ref({"content": {"j": {"schema": schemas["ErrorResponse"]["properties"]["error"]}}}, "j")
        == "ErrorDetail"
    )
    assert schemas["OIPErrorResponse"]["properties"]["error"]["type"] == "string"


def test_each_request_is_counted_by_route_and_status_and_names_no_replica_outside_serve(
    client,
) -> None:
    from serving import metrics

    metrics.RECORDER.drain()
    client.post("/v1/score", json={"customer_ids": [1, 2]})
    client.post("/v1/score", json={"customer_ids": []})
    r = client.get("/v2/health/live")
    counts, samples = metrics.RECORDER.drain()
    assert counts[("reengage_requests_total", ("/v1/score", "200"))] == 1
    assert counts[("reengage_requests_total", ("/v1/score", "422"))] == 1
    assert counts[("reengage_requests_total", ("/v2/health/live", "200"))] == 1
    assert len(samples[("reengage_request_latency_ms", ("/v1/score",))]) == 2
    assert "x-reengage-replica" not in r.headers


def test_fixed_headers_are_added_by_the_asgi_middleware(model_repo) -> None:
    from fastapi.testclient import TestClient

    from serving.components.models import ModelService
    from serving.dataplane import DataPlane
    from serving.http import create_app
    from serving.settings import load_settings

    settings = load_settings(
        {"models": {"repo_path": str(model_repo)}, "bandit": {"enabled": False}}
    )
    plane = DataPlane(settings, None, {"churn": ModelService("churn", settings.models)})  # type: ignore[arg-type]
    with TestClient(create_app(plane, headers={"x-reengage-replica": "r1"})) as c:
        assert c.get("/v2/health/live").headers["x-reengage-replica"] == "r1"
        assert c.get("/v2/models/nope").headers["x-reengage-replica"] == "r1"  # error answers too


def test_a_request_cancelled_mid_flight_is_counted_as_499_not_500() -> None:
    import asyncio

    from serving import metrics
    from serving.middleware.metrics import RequestMetrics

    started = asyncio.Event()

    async def slow_app(scope, receive, send) -> None:
        scope["route"] = type("R", (), {"path": "/v1/score"})()
        started.set()
        await asyncio.sleep(10)

    async def scenario() -> None:
        app = RequestMetrics(slow_app)
        task = asyncio.ensure_future(app({"type": "http"}, None, None))
        await started.wait()
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass

    metrics.RECORDER.drain()
    asyncio.run(scenario())
    counts, _ = metrics.RECORDER.drain()
    assert counts == {("reengage_requests_total", ("/v1/score", "499")): 1}
