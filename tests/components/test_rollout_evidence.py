"""The evidence gate in a simulation: a worse candidate is refused with its estimate, a
better one is promoted, ``force`` overrides and is audited."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import numpy as np
import pytest

from serving.bandit.ope import LogRecords
from serving.components.evidence import compare, row_versions, version_values
from serving.components.models import ModelService
from serving.components.rollout import PromotionRefused, TrafficPolicy, row_token
from serving.settings import TrafficPolicyConfig, load_settings
from tests.serving.conftest import LocalFeatures, TableReader

NAMES = ("a", "b", "c")
ARMS = ("discount_offer", "no_contact")


def simulate_log(reward_default: float, reward_candidate: float, *, n: int = 40_000, weight: float = 20.0,
                 batch: int = 200, seed: int = 0) -> LogRecords:
    """Decisions of a rollout (default 1, candidate 2 at ``weight``%) with Bernoulli rewards
    whose rate depends on the version that scored the customer; batches logged as the
    dataplane logs them (split batches carry the policy's token, one-row batches the version)."""
    rng = np.random.default_rng(seed)
    ids = rng.choice(10**9, n, replace=False).astype(np.int64)
    policy = TrafficPolicy.build("churn", TrafficPolicyConfig(default="1", candidates=[{"version": "2", "weight": weight}]), "1")
    codes, _ = policy.assign(ids)
    reward = (rng.random(n) < np.where(codes == 1, reward_candidate, reward_default)).astype(float)
    reward[rng.random(n) < 0.1] = np.nan  # some rewards not in yet
    mv = np.empty(n, dtype=object)
    for start in range(0, n, batch):
        chunk = codes[start:start + batch]
        if len(np.unique(chunk)) > 1:
            shared = {"churn": "1,2", "engagement": "1", "rollout.churn": row_token(chunk, ("1", "2"))}
        else:
            shared = {"churn": "2" if chunk[0] else "1", "engagement": "1"}
        mv[start:start + batch] = [shared] * len(chunk)
    z = np.zeros(n)
    return LogRecords(ids.astype(str).astype(object), z, ids, np.zeros((n, 2), np.float32),
                      rng.integers(0, 2, n), np.full(n, 0.5), reward, np.zeros(n, np.uint8),
                      np.full(n, "1", dtype=object), mv, ARMS, ("churn_probability", "engagement_probability"))


def test_each_rows_version_comes_back_from_the_log() -> None:
    records = simulate_log(0.1, 0.1, n=2_000)
    policy = TrafficPolicy.build("churn", TrafficPolicyConfig(default="1", candidates=[{"version": "2", "weight": 20}]), "1")
    codes, versions = policy.assign(records.customer_id)
    np.testing.assert_array_equal(row_versions(records, "churn"), np.asarray(versions, object)[codes])
    assert set(row_versions(records, "engagement").tolist()) == {"1"}


@pytest.mark.parametrize(("candidate", "verdict"), [(0.08, "worse"), (0.14, "better"), (0.10, "inconclusive")])
def test_the_verdict_follows_the_interval(candidate: float, verdict: str) -> None:
    values = version_values(simulate_log(0.10, candidate), "churn")
    got = compare(values, "1", "2")
    assert got["verdict"] == verdict, got
    assert values["2"]["n"] > 5_000 and values["1"]["low"] < 0.10 < values["1"]["high"]


def _dataplane(model_repo: Path, tmp_path: Path):  # type: ignore[no-untyped-def]
    from serving.dataplane import DataPlane

    settings = load_settings({"models": {"repo_path": str(model_repo)}, "data_dir": str(tmp_path / "data")})
    models = {name: ModelService(name, settings.models) for name in ("churn", "engagement")}
    return settings, DataPlane(settings, LocalFeatures(TableReader()), models, bandit=object())  # type: ignore[arg-type]


def _audit(settings) -> list[dict]:  # type: ignore[no-untyped-def]
    return [json.loads(line) for line in settings.auth.audit_log.read_text().splitlines()]


def test_promotion_is_refused_for_a_worse_candidate_and_accepted_for_a_better_one(
        model_repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import serving.bandit.ope as ope

    settings, dp = _dataplane(model_repo, tmp_path)
    policy = {"default": "1", "candidates": [{"version": "2", "weight": 20}], "salt": None}

    async def run() -> None:
        monkeypatch.setattr(ope, "load_log", lambda *a, **k: simulate_log(0.10, 0.08, seed=1))
        await dp.rollout_start("churn", policy)
        with pytest.raises(PromotionRefused) as refused:
            await dp.rollout_promote("churn")
        assert refused.value.status_code == 409 and "worse" in refused.value.message
        assert "difference -0.0" in refused.value.message  # the estimate and its interval are shown
        assert (await dp.models["churn"].traffic())["policy"]["default"] == "1"  # nothing changed
        status = await dp.rollout_status("churn")
        assert status["evidence"]["comparisons"]["2"]["verdict"] == "worse"
        forced = await dp.rollout_promote("churn", force=True, actor="ops")
        assert forced["forced"] and forced["policy"]["default"] == "2"
        await dp.rollout_rollback("churn")
        monkeypatch.setattr(ope, "load_log", lambda *a, **k: simulate_log(0.10, 0.14, seed=2))
        await dp.rollout_start("churn", policy)
        accepted = await dp.rollout_promote("churn")
        assert accepted["evidence"]["verdict"] == "better" and accepted["policy"]["default"] == "2"

    asyncio.run(run())
    promotes = [e for e in _audit(settings) if e["action"] == "rollout.promote"]
    assert [e["result"] for e in promotes] == ["error", "ok", "ok"]
    assert promotes[1]["actor"] == "ops" and promotes[1]["details"]["forced"] is True
    assert promotes[1]["details"]["evidence"]["verdict"] == "worse"  # the override is on the record
