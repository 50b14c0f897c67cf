"""/v1/explain and /v1/score with ``explain`` over the real trained models (no Ray).

The DataPlane runs the real model services on the session's trained repository; the
features come from an in-memory table of holdout customers (the readers themselves are
covered in tests/feature_store and end to end).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from serving.protocol.v1 import ErrorResponse, ExplainResponse, ScoreResponse


class HoldoutFeatures:
    """Customer i is row i of the holdout table; ids past the end are not found."""

    def __init__(self, names: tuple[str, ...], table: np.ndarray) -> None:
        self.names, self.table = names, table

    async def lookup(self, entity_ids: np.ndarray) -> Any:
        from feature_store.batch import FeatureBatch

        found = (entity_ids >= 0) & (entity_ids < len(self.table))
        values = np.full((len(entity_ids), len(self.names)), np.nan, dtype=np.float32)
        values[found] = self.table[entity_ids[found]]
        ts = np.where(found, 1_700_000_000.0, np.nan)[:, None]
        return FeatureBatch(values, found, ts, self.names, ("v",))


def _client(repo: Path, built: dict[str, Any], tmp_path: Path) -> Any:
    from fastapi.testclient import TestClient

    from serving.components.models import ModelService
    from serving.dataplane import DataPlane
    from serving.http import create_app
    from serving.settings import load_settings

    settings = load_settings(
        {
            "models": {"repo_path": str(repo)},
            "data_dir": str(tmp_path / "data"),
            "bandit": {"enabled": False},
        }
    )
    models = {name: ModelService(name, settings.models) for name in ("churn", "engagement")}
    dataplane = DataPlane(settings, HoldoutFeatures(built["names"], built["table"]), models)
    return TestClient(create_app(dataplane), raise_server_exceptions=False)


@pytest.fixture
def client(built: dict[str, Any], tmp_path: Path) -> Iterator[Any]:
    with _client(built["models"], built, tmp_path) as c:
        yield c


def _col(built: dict[str, Any], feature: str) -> np.ndarray:
    return built["table"][:, built["names"].index(feature)]


def test_explain_is_columnar_top_k_by_size_with_nulls_for_unknown_ids(
    client, built: dict[str, Any]
) -> None:
    n = len(built["table"])
    ids = [4, 0, n + 5, 17]
    r = client.post("/v1/explain", json={"customer_ids": ids, "top_k": 3})
    assert r.status_code == 200, r.text
    body = r.json()
    ExplainResponse.model_validate(body)
    assert body["customer_ids"] == ids and body["found"] == [True, True, False, True]
    for model in ("churn", "engagement"):
        block = body[model]
        assert (
            block["version"] == str(built["results"][model].version)
            and block["output"] == "log_odds"
        )
        assert block["base_value"][2] is None and block["contributions"][2] is None
        for row, cid in ((0, 4), (1, 0), (3, 17)):
            items = block["contributions"][row]
            assert len(items) == 3
            sizes = [abs(c["contribution"]) for c in items]
            assert sizes == sorted(sizes, reverse=True) and sizes[0] > 0
            for c in items:  # the value is the customer's own input to the model
                assert c["value"] == pytest.approx(
                    float(_col(built, c["feature"])[cid]), rel=1e-6, abs=1e-6
                )


def test_all_contributions_plus_base_value_give_the_score(client, built: dict[str, Any]) -> None:
    ids = list(range(0, 400, 7))
    score = client.post("/v1/score", json={"customer_ids": ids}).json()
    full = client.post("/v1/explain", json={"customer_ids": ids, "top_k": 1000}).json()
    for model in ("churn", "engagement"):
        block, p = full[model], np.array(score[f"{model}_probability"])
        n_features = len(built["results"][model].metrics["features"])
        assert {len(c) for c in block["contributions"]} == {n_features}  # top_k >= F: all of them
        z = np.array(block["base_value"]) + np.array(
            [sum(c["contribution"] for c in row) for row in block["contributions"]]
        )
        np.testing.assert_allclose(1 / (1 + np.exp(-z)), p, atol=2e-6, rtol=0)


def test_score_with_explain_adds_the_blocks_and_without_it_nothing(
    client, built: dict[str, Any]
) -> None:
    n = len(built["table"])
    plain = client.post("/v1/score", json={"customer_ids": [1, n + 1]}).json()
    assert "explanations" not in plain
    r = client.post("/v1/score", json={"customer_ids": [1, n + 1], "explain": 2})
    assert r.status_code == 200, r.text
    body = r.json()
    ScoreResponse.model_validate(body)
    assert body["churn_probability"] == plain["churn_probability"]
    for model in ("churn", "engagement"):
        block = body["explanations"][model]
        assert block["version"] == body["model_versions"][model]
        assert len(block["contributions"][0]) == 2 and block["contributions"][1] is None
    alone = client.post("/v1/explain", json={"customer_ids": [1], "top_k": 2}).json()
    assert alone["churn"]["contributions"][0] == body["explanations"]["churn"]["contributions"][0]


@pytest.mark.parametrize(
    "path,payload,field",
    [
        ("/v1/explain", {"customer_ids": [1], "top_k": 0}, "top_k"),
        ("/v1/explain", {"customer_ids": [1], "top_k": "3"}, "top_k"),
        ("/v1/explain", {"top_k": 3}, "customer_ids"),
        ("/v1/explain", {"customer_ids": [1], "explain": 3}, "explain"),
        ("/v1/score", {"customer_ids": [1], "explain": 0}, "explain"),
        ("/v1/score", {"customer_ids": [1], "explain": True}, "explain"),
    ],
)
def test_bad_explain_input_is_422_naming_the_field(
    client, path: str, payload: dict, field: str
) -> None:
    r = client.post(path, json=payload)
    assert r.status_code == 422, r.text
    assert ErrorResponse.model_validate(r.json()).error.field == field


def test_a_served_version_without_explainer_is_refused_not_skipped(
    built: dict[str, Any], tmp_path: Path
) -> None:
    repo = tmp_path / "repo"
    shutil.copytree(built["models"], repo)
    version = str(built["results"]["engagement"].version)
    (repo / "engagement" / version / "model.explain.onnx").unlink()
    with _client(repo, built, tmp_path) as c:
        assert (
            c.post("/v1/score", json={"customer_ids": [1]}).status_code == 200
        )  # scoring unaffected
        for path, payload in (
            ("/v1/explain", {"customer_ids": [1]}),
            ("/v1/score", {"customer_ids": [1], "explain": 3}),
        ):
            r = c.post(path, json=payload)
            assert r.status_code == 409, r.text
            err = r.json()["error"]
            assert err["type"] == "explainer_unavailable" and "engagement" in err["message"]
            assert version in err["message"]


def test_unknown_customers_only_get_nulls(client) -> None:
    r = client.post("/v1/explain", json={"customer_ids": [10**12, 10**12 + 1]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["found"] == [False, False]
    assert body["churn"]["contributions"] == [None, None] and body["engagement"]["base_value"] == [
        None,
        None,
    ]


def test_under_a_rollout_split_each_row_is_explained_by_the_version_that_scored_it(
    built: dict[str, Any], tmp_path: Path
) -> None:
    import asyncio

    from serving.components.models import ModelService
    from serving.dataplane import DataPlane
    from serving.settings import load_settings

    repo = tmp_path / "repo"
    shutil.copytree(built["models"], repo)
    v1 = str(built["results"]["churn"].version)
    shutil.copytree(repo / "churn" / v1, repo / "churn" / "99")  # a second version (same trees)
    settings = load_settings(
        {
            "models": {"repo_path": str(repo)},
            "data_dir": str(tmp_path / "data"),
            "bandit": {"enabled": False},
        }
    )
    models = {name: ModelService(name, settings.models) for name in ("churn", "engagement")}
    dp = DataPlane(settings, HoldoutFeatures(built["names"], built["table"]), models)
    ids = np.arange(300, dtype=np.int64)

    async def run() -> Any:
        await models["churn"].set_traffic(
            {"default": v1, "candidates": [{"version": "99", "weight": 40}]}, built["names"]
        )
        return await dp.inference.score(ids, explain=1000)

    result = asyncio.run(run())
    columns = result.columns()
    row_version = [columns["churn_version"].names[c] for c in columns["churn_version"].codes]
    assert set(row_version) == {v1, "99"}
    blocks = columns["explanations"]
    assert (
        blocks["churn"]["version"] == f"{v1},99"
        and blocks["engagement"]["version"] == result.model_versions["engagement"]
    )
    for name, parts in result.explanations.items():
        covered = np.sort(np.concatenate([rows for _, rows in parts]))
        np.testing.assert_array_equal(covered, ids)  # every row once
        if name == "churn":
            for (
                expl,
                rows,
            ) in parts:  # each part is one version, holding exactly that version's rows
                assert {row_version[i] for i in rows.tolist()} == {expl.version}
    z = blocks["churn"]["base_value"] + np.array(
        [sum(c["contribution"] for c in row) for row in blocks["churn"]["contributions"]]
    )
    np.testing.assert_allclose(1 / (1 + np.exp(-z)), result.churn_probability, atol=2e-6, rtol=0)
