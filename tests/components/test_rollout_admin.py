"""The rollout admin API over HTTP (FastAPI TestClient, real ONNX models, no Ray)."""

from __future__ import annotations

import json

from serving.protocol.rollout import RolloutChange, RolloutStatus
from serving.protocol.v1 import ErrorResponse, ScoreResponse
from tests.serving.conftest import client, model_repo, reader  # noqa: F401  (fixtures)

IDS = list(range(100))


def test_a_canary_splits_the_answer_with_a_version_per_row(client) -> None:  # noqa: F811
    before = ScoreResponse.model_validate(
        client.post("/v1/score", json={"customer_ids": IDS}).json()
    )
    assert before.churn_version is None and before.model_versions.churn == "2"
    r = client.post(
        "/v1/admin/rollout/churn",
        json={"default": "1", "candidates": [{"version": "2", "weight": 30}]},
    )
    assert r.status_code == 200, r.text
    change = RolloutChange.model_validate(r.json())
    assert change.policy and change.policy["default"] == "1" and change.propagation_s >= 0
    answer = ScoreResponse.model_validate(
        client.post("/v1/score", json={"customer_ids": IDS}).json()
    )
    assert answer.model_versions.churn == "1,2" and answer.engagement_version is None
    assert set(answer.churn_version or []) == {"1", "2"}
    again = ScoreResponse.model_validate(
        client.post("/v1/score", json={"customer_ids": IDS[::-1]}).json()
    )
    assert again.churn_version == (answer.churn_version or [])[::-1]  # sticky per customer
    one = client.post("/v1/score", json={"customer_ids": [IDS[0]]}).json()
    assert one["model_versions"]["churn"] == answer.churn_version[0] and "churn_version" not in one  # type: ignore[index]
    status = RolloutStatus.model_validate(client.get("/v1/admin/rollout/churn").json())
    assert status.policy and status.policy["candidates"] == [{"version": "2", "weight": 30.0}]
    assert status.evidence["available"] is False  # this app runs without the bandit
    refused = client.post(
        "/v1/admin/rollout/churn/promote", json={}
    )  # no decision log: no evidence
    assert refused.status_code == 409 and refused.json()["error"]["type"] == "promotion_refused"
    assert "the bandit is disabled" in refused.json()["error"]["message"]
    promoted = client.post("/v1/admin/rollout/churn/promote", json={"force": True})
    assert promoted.status_code == 200 and promoted.json()["policy"]["default"] == "2"
    assert client.post("/v1/admin/rollout/churn/rollback").json()["policy"]["default"] == "1"
    assert (
        client.post("/v1/score", json={"customer_ids": IDS}).json()["model_versions"]["churn"]
        == "1"
    )


def test_refusals_are_our_json_errors(client) -> None:  # noqa: F811
    bad = client.post(
        "/v1/admin/rollout/churn", json={"candidates": [{"version": "9", "weight": 10}]}
    )
    assert (
        bad.status_code == 422
        and ErrorResponse.model_validate(bad.json()).error.type == "version_refused"
    )
    over = client.post(
        "/v1/admin/rollout/churn",
        json={"candidates": [{"version": "1", "weight": 60}, {"version": "2", "weight": 60}]},
    )
    assert over.status_code == 422 and ErrorResponse.model_validate(over.json())
    assert client.post("/v1/admin/rollout/nope", json={}).status_code == 404
    assert (
        client.post("/v1/admin/rollout/churn/rollback").status_code == 409
    )  # nothing to roll back
    anonymous = client.post("/v1/admin/rollout/churn/rollback", headers={"Authorization": ""})
    assert anonymous.status_code == 401 and ErrorResponse.model_validate(anonymous.json())


def test_every_admin_call_is_in_the_audit_log(client) -> None:  # noqa: F811
    client.post(
        "/v1/admin/rollout/churn",
        json={"default": "1", "candidates": [{"version": "2", "weight": 10}]},
    )
    client.post("/v1/admin/rollout/churn/rollback")
    client.post("/v1/admin/models/churn/versions/2/unload")
    settings = client.app.state.dataplane.settings
    entries = [json.loads(line) for line in settings.auth.audit_log.read_text().splitlines()]
    assert [
        (e["action"], e["result"])
        for e in entries
        if e["action"].startswith(("rollout", "version"))
    ] == [("rollout.start", "ok"), ("rollout.rollback", "ok"), ("version.unload", "ok")]


def test_the_arrow_answer_carries_the_version_column(client) -> None:  # noqa: F811
    import pyarrow as pa

    client.post(
        "/v1/admin/rollout/churn",
        json={"default": "1", "candidates": [{"version": "2", "weight": 50}]},
    )
    r = client.post(
        "/v1/score",
        json={"customer_ids": IDS},
        headers={"Accept": "application/vnd.apache.arrow.stream"},
    )
    table = pa.ipc.open_stream(r.content).read_all()
    json_answer = client.post("/v1/score", json={"customer_ids": IDS}).json()
    assert table.column("churn_version").to_pylist() == json_answer["churn_version"]


def test_the_cli_drives_a_rollout(client, monkeypatch) -> None:  # noqa: F811
    import httpx
    from typer.testing import CliRunner

    from serving.cli import app as cli

    token = client.headers["authorization"].split(" ", 1)[1]
    monkeypatch.setenv("REENGAGE_TOKEN", token)
    sent: list[tuple[str, str, dict]] = []

    def request(method: str, url: str, **kwargs):  # type: ignore[no-untyped-def]
        sent.append((method, url, kwargs["headers"]))
        kwargs.pop("timeout", None)  # the TestClient takes none
        return client.request(method, url.removeprefix("http://testserver"), **kwargs)

    monkeypatch.setattr(httpx, "request", request)
    runner = CliRunner()

    def run(*args: str) -> str:
        result = runner.invoke(cli, ["rollout", *args, "--url", "http://testserver"])
        assert result.exit_code == 0, result.output
        return result.output

    assert "candidates v2 20%" in run(
        "start", "churn", "--default", "1", "--candidate", "2:20", "--shadow", "2:50"
    )
    status = run("status", "churn")
    assert "generation" in status and "evidence: the bandit is disabled" in status
    assert "default v2" in run("promote", "churn", "--force")
    assert "default v1" in run("rollback", "churn")
    assert all(h["Authorization"] == f"Bearer {token}" for _, _, h in sent)
    refused = runner.invoke(
        cli, ["rollout", "start", "churn", "--candidate", "9:10", "--url", "http://testserver"]
    )
    assert refused.exit_code == 1 and "version_refused" in refused.output


def test_every_query_and_body_value_is_validated_naming_the_field(client) -> None:  # noqa: F811
    cases = [
        ("get", "/v1/admin/rollout/churn?confidence=1", None, "confidence"),
        ("get", "/v1/admin/rollout/churn?confidence=0", None, "confidence"),
        ("get", "/v1/admin/rollout/churn?confidence=high", None, "confidence"),
        (
            "post",
            "/v1/admin/rollout/churn",
            {"candidates": [{"version": "2", "weight": 60}, {"version": "1", "weight": 50}]},
            "candidates",
        ),
        (
            "post",
            "/v1/admin/rollout/churn",
            {"default": "1", "candidates": [{"version": "1", "weight": 5}]},
            "candidates",
        ),
        (
            "post",
            "/v1/admin/rollout/churn",
            {"candidates": [{"version": "2", "weight": -1}]},
            "candidates[0].weight",
        ),
        (
            "post",
            "/v1/admin/rollout/churn",
            {"candidates": [{"version": "v2", "weight": 1}]},
            "candidates[0].version",
        ),
        (
            "post",
            "/v1/admin/rollout/churn",
            {"candidates": [{"version": "2", "weight": 5}], "salt": ""},
            "salt",
        ),
        (
            "post",
            "/v1/admin/rollout/churn",
            {"candidates": [{"version": "2", "weight": 5}], "salt": "s" * 201},
            "salt",
        ),
        ("post", "/v1/admin/rollout/churn", {"buckets": {"2": [[0, 10]]}}, "buckets"),
        (
            "post",
            "/v1/admin/rollout/churn",
            {"shadow": {"version": "2", "percent": 0}},
            "shadow.percent",
        ),
        ("post", "/v1/admin/rollout/churn/promote", {"confidence": 1}, "confidence"),
        ("post", "/v1/admin/rollout/churn/promote", {"version": "x"}, "version"),
        ("post", "/v1/admin/rollout/churn/promote", {"force": "maybe"}, "force"),
        ("post", "/v1/admin/models/churn/versions/x/unload", None, "model_version"),
    ]
    for method, url, body, field in cases:
        r = client.request(method.upper(), url, json=body)
        assert r.status_code == 422, (url, body, r.status_code, r.text)
        assert ErrorResponse.model_validate(r.json()).error.field == field, (url, body, r.text)


def test_a_salt_with_a_bar_starts_reads_and_promotes(client) -> None:  # noqa: F811
    r = client.post(
        "/v1/admin/rollout/churn",
        json={
            "default": "1",
            "salt": "team|2024|é",
            "candidates": [{"version": "2", "weight": 40}],
        },
    )
    assert r.status_code == 200, r.text
    status = client.get("/v1/admin/rollout/churn?confidence=0.9")
    assert status.status_code == 200 and status.json()["policy"]["salt"] == "team|2024|é"
    forced = client.post("/v1/admin/rollout/churn/promote", json={"force": True})
    assert forced.status_code == 200 and forced.json()["policy"]["default"] == "2"


def test_an_admin_token_pins_a_version_and_the_answer_says_so(client) -> None:  # noqa: F811
    from serving.security import hash_token
    from serving.security.shared_tokens import TokenBook, watch_tokens
    from serving.shared_state import open_shared_state

    client.post(
        "/v1/admin/rollout/churn",
        json={"default": "1", "candidates": [{"version": "2", "weight": 50}]},
    )
    pinned = client.post(
        "/v1/score", json={"customer_ids": IDS}, headers={"X-Reengage-Version": "churn=2"}
    )
    assert pinned.status_code == 200, pinned.text
    body = ScoreResponse.model_validate(pinned.json())
    assert (
        body.pinned == {"churn": "2"}
        and body.model_versions.churn == "2"
        and body.churn_version is None
    )
    both = client.post(
        "/v1/score",
        json={"customer_ids": IDS[:3]},
        headers={"X-Reengage-Version": "churn=1, engagement=1"},
    )
    assert (
        both.json()["pinned"] == {"churn": "1", "engagement": "1"}
        and both.json()["model_versions"]["engagement"] == "1"
    )
    unpinned = client.post("/v1/score", json={"customer_ids": IDS}).json()
    assert "pinned" not in unpinned and set(unpinned["churn_version"]) == {"1", "2"}
    settings = client.app.state.dataplane.settings
    TokenBook(open_shared_state(settings)).put(
        "crm", hash_token("rng_crm-" + "y" * 40), ["inference", "feedback"]
    )
    watch_tokens(
        settings
    ).refresh()  # what the replica's watch thread does within auth.reload_interval_s
    for headers in ({"Authorization": ""}, {"Authorization": "Bearer rng_crm-" + "y" * 40}):
        r = client.post(
            "/v1/score",
            json={"customer_ids": IDS},
            headers={**headers, "X-Reengage-Version": "churn=2"},
        )
        assert (
            r.status_code == 403
            and ErrorResponse.model_validate(r.json()).error.field == "x-reengage-version"
        )
    for bad in ("churn", "churn=x", "fraud=2", "churn=1,churn=2"):
        r = client.post(
            "/v1/score", json={"customer_ids": IDS}, headers={"X-Reengage-Version": bad}
        )
        assert r.status_code == 422 and r.json()["error"]["field"] == "x-reengage-version", bad
    missing = client.post(
        "/v1/score", json={"customer_ids": IDS}, headers={"X-Reengage-Version": "churn=9"}
    )
    assert missing.status_code == 404


def test_a_pinned_batch_is_marked_in_the_decision_log(client) -> None:  # noqa: F811
    import asyncio

    import numpy as np

    dp = client.app.state.dataplane
    result = asyncio.run(dp.inference.score(np.array(IDS[:5]), pins={"churn": "1"}))
    assert result.log_versions() == {"churn": "1", "engagement": "1", "pinned.churn": "1"}


def test_promoting_a_version_outside_the_rollout_needs_evidence_too(client) -> None:  # noqa: F811
    client.post("/v1/admin/rollout/churn", json={"default": "1"})
    r = client.post("/v1/admin/rollout/churn/promote", json={"version": "2"})
    assert r.status_code == 409 and r.json()["error"]["type"] == "promotion_refused"
    same = client.post("/v1/admin/rollout/churn/promote", json={"version": "1", "force": True})
    assert same.status_code == 409 and "already the default" in same.json()["error"]["message"]
    assert (
        client.post("/v1/score", json={"customer_ids": IDS}).json()["model_versions"]["churn"]
        == "1"
    )
