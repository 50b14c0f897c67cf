"""/v1/score in Arrow IPC (chosen by Accept) carries exactly what the JSON answer does."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa

ARROW = "application/vnd.apache.arrow.stream"


def test_arrow_answer_equals_the_json_answer(client) -> None:
    ids = {"customer_ids": [3, 1, 999_999, 7]}
    as_json = client.post("/v1/score", json=ids)
    as_arrow = client.post("/v1/score", json=ids, headers={"Accept": ARROW})
    assert as_json.headers["content-type"].startswith("application/json")
    assert as_arrow.status_code == 200 and as_arrow.headers["content-type"] == ARROW
    table = pa.ipc.open_stream(as_arrow.content).read_all()
    got, want = table.to_pydict(), as_json.json()
    assert json.loads(table.schema.metadata[b"model_versions"]) == want["model_versions"]
    for key in ("customer_ids", "found", "action", "decision_id", "reason", "features_defaulted"):
        assert got[key] == want[key], key
    for key in ("churn_probability", "engagement_probability"):
        np.testing.assert_allclose(
            np.array(got[key], dtype=float), np.array(want[key], dtype=float), rtol=1e-6
        )
    assert got["found"] == [True, True, False, True] and got["churn_probability"][2] is None


def test_json_stays_the_default_for_any_other_accept(client) -> None:
    r = client.post("/v1/score", json={"customer_ids": [1]}, headers={"Accept": "*/*"})
    assert r.headers["content-type"].startswith("application/json") and r.json()["found"] == [True]
