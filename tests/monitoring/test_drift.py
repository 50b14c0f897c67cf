"""Drift and segments on real models and data, through the DataPlane the routes call."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import numpy as np
import pandas as pd

from serving.monitoring import References, Thresholds, report
from tests.monitoring.conftest import CUSTOMERS, score_all

THRESHOLDS = Thresholds(psi=0.2, min_rows=500)


def _report(dp: Any, start: float) -> dict[str, Any]:
    dp.monitor.flush()
    now = time.time()
    return report(
        dp.monitor.store, dp.monitor.references, THRESHOLDS, int(start), int(now) + 1, now
    ).to_json()


def _psis(model: dict[str, Any]) -> dict[str, float]:
    return {"score": model["score"]["psi"], **{f["feature"]: f["psi"] for f in model["features"]}}


def test_the_training_population_is_ok(make_dataplane: Any) -> None:
    async def run() -> tuple[dict[str, Any], dict[str, Any]]:
        dp = make_dataplane()
        start = time.time()
        answers = await score_all(dp, np.arange(1, CUSTOMERS + 1, dtype=np.int64))
        out = _report(dp, start)
        await dp.close()
        return answers, out

    answers, out = asyncio.run(run())
    assert out["status"] == "ok"
    assert out["window"]["rows"] == CUSTOMERS and out["replicas"] == 1
    for name in ("churn", "engagement"):
        model = out["models"][name]
        assert (
            model["status"] == "ok"
            and model["rows"] == CUSTOMERS
            and model["reference_rows"] == CUSTOMERS
        )
        psis = _psis(model)
        assert len(psis) > 20 and all(v is not None and v < 0.1 for v in psis.values()), psis
        assert all(f["missing_rate"] == 0 for f in model["features"])
    shares = out["actions"]["share"]
    decided = answers["action"][answers["action"] != None]  # noqa: E711 (object array)
    for arm, share in shares.items():
        assert abs(share - np.mean(decided == arm)) < 1e-12
    assert out["actions"]["min_propensity"] > 0


def test_scoring_only_likely_churners_is_drift(make_dataplane: Any) -> None:
    async def run() -> dict[str, Any]:
        dp = make_dataplane()
        first = await score_all(dp, np.arange(1, CUSTOMERS + 1, dtype=np.int64))
        risky = first["ids"][first["churn"] > 0.5]
        assert len(risky) >= THRESHOLDS.min_rows
        await asyncio.sleep(1.1)  # a window of its own: a fresh second
        start = time.time()
        await score_all(dp, risky)
        out = _report(dp, start)
        assert out["window"]["rows"] == len(risky)
        await dp.close()
        return out

    out = asyncio.run(run())
    churn = out["models"]["churn"]
    assert churn["score"]["psi"] > 0.2 and churn["score"]["drift"] is True
    assert churn["status"] == "drift" and out["status"] == "drift"
    assert sum(churn["score"]["bins"]["current"]) == out["window"]["rows"]


def test_below_min_rows_is_insufficient_never_ok(make_dataplane: Any) -> None:
    async def run() -> dict[str, Any]:
        dp = make_dataplane()
        start = time.time()
        await score_all(dp, np.arange(1, 101, dtype=np.int64))
        out = _report(dp, start)
        await dp.close()
        return out

    out = asyncio.run(run())
    assert out["window"]["rows"] == 100
    assert out["status"] == "insufficient_data"
    assert out["models"]["churn"]["status"] == "insufficient_data"
    assert not any(f["drift"] for f in out["models"]["churn"]["features"])


def test_segment_contact_rates_match_the_answers(
    make_dataplane: Any, profile: pd.DataFrame
) -> None:
    """contact_rate_ratio recomputed from the answers' actions and the generated profile."""

    async def run() -> tuple[dict[str, Any], dict[str, Any]]:
        dp = make_dataplane()
        start = time.time()
        answers = await score_all(dp, np.arange(1, 3001, dtype=np.int64))
        out = _report(dp, start)
        await dp.close()
        return answers, out

    answers, out = asyncio.run(run())
    contact = np.isin(
        answers["action"], ["discount_offer", "free_shipping", "content_digest", "winback_email"]
    )
    tiers = profile.loc[answers["ids"], "plan_tier"].to_numpy()
    overall = contact.mean()
    assert 0 < overall < 1
    for i, tier in enumerate(("basic", "plus", "premium")):
        seg = next(s for s in out["segments"] if s["feature"] == "plan_tier" and s["value"] == tier)
        m = tiers == i
        assert seg["rows"] == int(m.sum())
        assert abs(seg["contact_rate"] - contact[m].mean()) < 1e-12
        assert abs(seg["contact_rate_ratio"] - contact[m].mean() / overall) < 1e-12
        assert abs(seg["mean_churn"] - answers["churn"][m].mean()) < 1e-6
        assert abs(seg["holdout_share"] - np.mean(answers["reason"][m] == "holdout")) < 1e-12
    ages = profile.loc[answers["ids"], "age_years"].to_numpy()
    seg = next(s for s in out["segments"] if s["feature"] == "age_band" and s["value"] == "65+")
    assert seg["rows"] == int((ages >= 65).sum())


def test_forced_contacts_raise_their_segment_ratio(
    make_dataplane: Any, profile: pd.DataFrame
) -> None:
    """A forced action (as /v1/reengage takes) counts as the contact made, not the bandit's pick."""

    async def run() -> dict[str, Any]:
        dp = make_dataplane()
        start = time.time()
        ids = np.arange(1, 2001, dtype=np.int64)
        premium = ids[profile.loc[ids, "plan_tier"].to_numpy() == 2]
        await dp.inference._score(premium, forced="winback_email")  # noqa: SLF001 (the reengage path's scoring)
        others = ids[profile.loc[ids, "plan_tier"].to_numpy() != 2]
        await dp.inference._score(others, forced="no_contact")  # noqa: SLF001
        out = _report(dp, start)
        await dp.close()
        return out

    out = asyncio.run(run())
    prem = next(
        s for s in out["segments"] if s["feature"] == "plan_tier" and s["value"] == "premium"
    )
    basic = next(
        s for s in out["segments"] if s["feature"] == "plan_tier" and s["value"] == "basic"
    )
    assert prem["contact_rate"] == 1.0 and basic["contact_rate"] == 0.0
    assert abs(prem["contact_rate_ratio"] - out["window"]["rows"] / prem["rows"]) < 1e-12
    assert out["actions"]["share"] == {
        "no_contact": 1 - prem["rows"] / out["window"]["rows"],
        "winback_email": prem["rows"] / out["window"]["rows"],
    }


def test_a_version_without_reference_is_served_and_reported(
    make_dataplane: Any, ws_settings: Any
) -> None:
    ref = ws_settings.models.repo_path / "engagement" / "1" / "reference.json"
    saved = ref.read_bytes()
    ref.unlink()
    try:

        async def run() -> dict[str, Any]:
            dp = make_dataplane()
            start = time.time()
            result = await dp.inference.score(np.arange(1, 1501, dtype=np.int64))
            assert np.isfinite(result.engagement_probability).all()
            out = _report(dp, start)
            await dp.close()
            return out

        out = asyncio.run(run())
    finally:
        ref.write_bytes(saved)
    eng = out["models"]["engagement"]
    assert eng["status"] == "no_reference" and eng["rows"] == 1500 and eng["score"]["psi"] is None
    assert out["models"]["churn"]["status"] == "ok" and out["status"] == "ok"
    assert References(ws_settings.models.repo_path).get("engagement", "1") is not None
