from __future__ import annotations

import numpy as np
import pytest

from tests.serving.conftest import TableReader


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-z))


def test_score_is_columnar_in_request_order_with_unknown_ids_null(client, reader: TableReader) -> None:
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
    np.testing.assert_allclose([body["engagement_probability"][i] for i in (0, 1, 3)], eng, rtol=1e-5)
    assert body["churn_probability"][2] is None and body["engagement_probability"][2] is None
    assert body["feature_age_s"][2] is None and body["feature_age_s"][0] > 0
    assert body["model_versions"] == {"churn": "2", "engagement": "1"}
    assert body["action"] == [None] * 4  # bandit disabled in this app


@pytest.mark.parametrize("payload,field", [
    ({}, "customer_ids"),
    ({"customer_ids": []}, "customer_ids"),
    ({"customer_ids": [1, "x"]}, "customer_ids[1]"),
    ({"customer_ids": [1, 2.5]}, "customer_ids[1]"),
    ({"customer_ids": [True]}, "customer_ids[0]"),
    ({"customer_ids": [-1]}, "customer_ids[0]"),
    ({"customer_ids": list(range(10_001))}, "customer_ids"),
    ({"customer_ids": [1], "extra": 1}, "extra"),
    ({"customer_ids": "1,2"}, "customer_ids"),
])
def test_score_rejects_bad_input_naming_the_field(client, payload: dict, field: str) -> None:
    r = client.post("/v1/score", json=payload)
    assert r.status_code == 422, r.text
    err = r.json()["error"]
    assert err["field"] == field and err["type"] == "invalid_request" and err["message"]


def test_malformed_json_is_400(client) -> None:
    r = client.post("/v1/score", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 400
    assert r.json()["error"]["type"] == "malformed_body"


def test_10000_ids_are_accepted(client) -> None:
    r = client.post("/v1/score", json={"customer_ids": list(range(10_000))})
    assert r.status_code == 200
    assert sum(r.json()["found"]) == 100


def test_feedback_without_bandit_is_a_clear_error(client) -> None:
    r = client.post("/v1/feedback", json={"decision_id": "abc", "reward": 1})
    assert r.status_code == 404 and r.json()["error"]["field"] == "decision_id"
    bad = client.post("/v1/feedback", json={"decision_id": "abc", "reward": "high"})
    assert bad.status_code == 422 and bad.json()["error"]["field"].startswith("reward")
