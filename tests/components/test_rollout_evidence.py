"""Rollout evidence from a real decision log: running sums that match a full read, windows
that close into reward 0, pinned batches left out; and the gate behind promote."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import numpy as np
import pytest

from serving.bandit.state import BatchRecord, Group, Reason, RewardUpdate, SqliteStore
from serving.components.evidence_index import EvidenceIndex
from serving.components.models import ModelService
from serving.components.traffic_policy import PromotionRefused, TrafficPolicy, row_token
from serving.settings import TrafficPolicyConfig, load_settings
from tests.serving.conftest import LocalFeatures, TableReader

ARMS = ("discount_offer", "no_contact")
WINDOW = 3600.0
POLICY = TrafficPolicy.build(
    "churn",
    TrafficPolicyConfig(
        default="1",
        salt="s|1",
        candidates=[{"version": "2", "weight": 20}, {"version": "3", "weight": 10}],
    ),
    "1",
)
RATES = {"1": 0.10, "2": 0.10, "3": 0.05}


def _batch(
    rng: np.random.Generator, t: float, n: int, *, pinned: bool = False
) -> tuple[BatchRecord, np.ndarray]:
    """One logged /v1/score batch as the dataplane logs it; returns its rows' versions."""
    ids = rng.integers(0, 10**9, n)
    codes, versions = POLICY.assign(ids)
    reason = np.where(rng.random(n) < 0.1, Reason.HOLDOUT, Reason.POLICY).astype(np.uint8)
    mv = {"churn": ",".join(versions), "rollout.churn": row_token(codes.astype(np.int64), versions)}
    if pinned:
        mv = {"churn": "3", "pinned.churn": "3"}
    rec = BatchRecord(
        rng.bytes(8).hex(),
        t,
        "thompson",
        "1",
        mv,
        ARMS,
        ("a",),
        ids.astype(np.int64),
        np.zeros((n, 1), np.float32),
        rng.integers(0, 2, n).astype(np.int16),
        np.full(n, 0.5),
        reason,
    )
    return rec, np.asarray(versions, object)[codes]


def _reward(
    store: SqliteStore, bids: list[str], rows: np.ndarray, rewards: np.ndarray, now: float
) -> None:
    n = len(bids)
    store.record_rewards(
        RewardUpdate(
            "k",
            (2, 1),
            1.0,
            bids,
            rows,
            rewards,
            now,
            np.zeros((n, 1)),
            np.zeros(n, np.int64),
            np.zeros(n, bool),
        )
    )


def test_running_sums_match_a_full_read_as_windows_close(tmp_path: Path) -> None:
    """Conversions only (reward 1 or nothing), decisions over three hours, a one-hour
    window: the index, refreshed incrementally, matches the brute-force count."""
    rng = np.random.default_rng(0)
    store = SqliteStore(tmp_path / "actions.sqlite")
    index = EvidenceIndex(lambda: SqliteStore(tmp_path / "actions.sqlite"), WINDOW)
    t0 = 1_700_000_000.0
    truth: list[
        tuple[float, np.ndarray, np.ndarray, np.ndarray]
    ] = []  # t, versions, policy rows, reward time
    for step in range(12):  # a phase every 15 minutes
        now = t0 + (step + 1) * 900
        for k in range(20):
            t = now - 900 + k * 45
            rec, versions = _batch(rng, t, 60, pinned=(k == 3))
            store.commit(Group([rec]))
            policy = (rec.reason == Reason.POLICY) & (k != 3)
            converts = rng.random(60) < np.vectorize(RATES.get)(versions)
            at = np.where(converts, t + rng.uniform(0, WINDOW, 60), np.inf)
            truth.append((t, versions, policy, at))
        due = [
            (i, r)
            for i, (t, _, _, at) in enumerate(truth)
            for r in np.flatnonzero((at > now - 900) & (at <= now))
        ]
        for i, r in due:  # each reward recorded when it happens
            at = truth[i][3][r]
            bid = store._read("SELECT batch_id FROM batches WHERE t=?", (truth[i][0],))[0][0]
            _reward(store, [bid], np.array([r]), np.array([1.0]), float(at))
        got = index.refresh("churn", t0, now)
        for version in RATES:
            n = total = 0
            for t, versions, policy, at in truth:
                mine = policy & (versions == version)
                closed = (np.floor(t / 60) + 1) * 60 + WINDOW <= now
                rewarded = mine & (at <= now)
                n += int(mine.sum()) if closed else int(rewarded.sum())
                total += int(rewarded.sum())
            assert (got[version].n, got[version].total) == (n, float(total)), (step, version)
    assert got["3"].n > 0 and got["1"].n > got["3"].n
    index.close()
    store.close()


def _dataplane(model_repo: Path, tmp_path: Path):  # type: ignore[no-untyped-def]
    from serving.components.bandit import BanditService
    from serving.dataplane import DataPlane

    settings = load_settings(
        {
            "models": {
                "repo_path": str(model_repo),
                "rollout_margin": 0.05,
                "rollout_min_decisions": 100,
            },
            "data_dir": str(tmp_path / "data"),
        }
    )
    models = {name: ModelService(name, settings.models) for name in ("churn", "engagement")}
    bandit = BanditService(settings.bandit)  # the evidence comes through the bandit component
    return settings, DataPlane(settings, LocalFeatures(TableReader()), models, bandit=bandit)


def _log(settings, start: float, rates: dict[str, float], n: int, seed: int) -> None:  # type: ignore[no-untyped-def]
    """``n`` decisions after ``start`` for default 1 / candidate 2, every one rewarded 0 or 1."""
    rng = np.random.default_rng(seed)
    store = SqliteStore(settings.bandit.state_path / f"{settings.bandit.name}.sqlite")
    policy = TrafficPolicy.build(
        "churn",
        TrafficPolicyConfig(default="1", salt="x", candidates=[{"version": "2", "weight": 50}]),
        "1",
    )
    for b in range(n // 200):
        ids = rng.integers(0, 10**9, 200)
        codes, versions = policy.assign(ids)
        rec = BatchRecord(
            rng.bytes(8).hex(),
            start + 0.001 * (b + 1),
            "thompson",
            "1",
            {"churn": "1,2", "rollout.churn": row_token(codes.astype(np.int64), versions)},
            ARMS,
            ("a",),
            ids,
            np.zeros((200, 1), np.float32),
            np.zeros(200, np.int16),
            np.full(200, 0.5),
            np.zeros(200, np.uint8),
        )
        store.commit(Group([rec]))
        reward = (rng.random(200) < np.where(codes == 1, rates["2"], rates["1"])).astype(float)
        _reward(store, [rec.batch_id] * 200, np.arange(200), reward, time.time())
    store.close()


def _audit(settings) -> list[dict]:  # type: ignore[no-untyped-def]
    return [json.loads(line) for line in settings.auth.audit_log.read_text().splitlines()]


def test_promotion_needs_evidence_of_non_inferiority(model_repo: Path, tmp_path: Path) -> None:
    settings, dp = _dataplane(model_repo, tmp_path)
    policy = {"default": "1", "candidates": [{"version": "2", "weight": 50}]}

    async def run() -> None:
        started = (await dp.rollouts.start("churn", policy)).effective_at
        with pytest.raises(PromotionRefused) as none:  # no decision yet
            await dp.rollouts.promote("churn")
        assert none.value.status_code == 409 and none.value.evidence["verdict"] == "insufficient"
        assert (
            "100 more decisions per arm" in none.value.message
            and "margin 0.05" in none.value.message
        )
        _log(settings, started, {"1": 0.5, "2": 0.2}, 2_000, seed=1)
        with pytest.raises(PromotionRefused) as worse:
            await dp.rollouts.promote("churn")
        assert (
            worse.value.evidence["verdict"] == "inferior"
            and "difference -0.2" in worse.value.message
        )
        assert worse.value.to_body()["error"]["evidence"]["difference"]["high"] < -0.05
        assert (await dp.models["churn"].traffic()).policy["default"] == "1"  # nothing changed
        status = await dp.rollouts.status("churn")
        assert status.evidence.comparisons["2"].verdict == "inferior"
        assert status.evidence.margin == 0.05 and status.evidence.values["2"].n > 500
        forced = await dp.rollouts.promote("churn", force=True, actor="ops")
        assert forced.forced and forced.change.policy["default"] == "2"
        await dp.rollouts.rollback("churn")
        again = (await dp.rollouts.start("churn", policy)).effective_at
        await asyncio.sleep(0.01)
        _log(settings, again, {"1": 0.5, "2": 0.5}, 12_000, seed=2)
        accepted = await dp.rollouts.promote("churn")
        assert (
            accepted.evidence.verdict in ("non_inferior", "better")
            and accepted.change.policy["default"] == "2"
        )
        await dp.close()

    asyncio.run(run())
    promotes = [e for e in _audit(settings) if e["action"] == "rollout.promote"]
    assert [e["result"] for e in promotes] == ["error", "error", "ok", "ok"]
    assert promotes[2]["actor"] == "ops" and promotes[2]["details"]["forced"] is True
    assert (
        promotes[2]["details"]["evidence"]["verdict"] == "inferior"
    )  # the override is on the record
