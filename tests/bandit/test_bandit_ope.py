"""OPE on a simulated log: known candidate values fall inside the reported intervals."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from rich.console import Console

from serving.bandit.ope import evaluate, load_log, run_ope, uplift
from serving.bandit.simulate import Environment, simulate
from serving.errors import InvalidRequest

ENV = Environment(
    np.array([[0.1, 0.6, 0.0], [0.7, -0.6, 0.0], [0.3, 0.0, 0.0], [0.3, 0.0, 0.0], [0.2, 0.0, 0.0]])
)


def true_value(rule: Any) -> float:
    x = ENV.contexts(400_000, np.random.default_rng(99))
    return float((rule(x) * ENV.means(x)).sum(axis=1).mean())


def threshold_rule(x: np.ndarray) -> np.ndarray:
    """Deterministic candidate: arm 0 when x0 > 0.5, else arm 1 (the optimal policy here)."""
    out = np.zeros((len(x), 5))
    out[np.arange(len(x)), np.where(x[:, 0] > 0.5, 0, 1)] = 1.0
    return out


@pytest.fixture
def logged(embedded_router: Any) -> Any:
    """3,000 decisions by an exploring LinUCB router (context-dependent propensities), rewarded."""
    router = embedded_router(
        policy="linucb",
        epsilon=0.5,
        holdout_share=0.0,
        contact_cap=0,
        arms=["a0", "a1", "a2", "a3", "no_contact"],
    )
    simulate(router, ENV, rounds=30, batch=100, seed=5)
    return router


def test_estimates_cover_the_known_value(logged: Any) -> None:
    records = load_log(logged.settings)
    assert len(records) == 3000 and np.isfinite(records.reward).all()
    assert records.propensity.min() < 0.2 < records.propensity.max()  # not a uniform logger
    for rule in (threshold_rule, lambda x: np.full((len(x), 5), 0.2)):
        truth = true_value(rule)
        report = evaluate(records, rule)
        assert report.n == 3000 and 0 < report.effective_sample_size <= 3000
        for est in (report.ips, report.snips, report.dr):
            assert est.low <= truth <= est.high, (est, truth)
            assert est.high - est.low < 0.15  # informative, not vacuous
    report = evaluate(records, threshold_rule)
    assert report.dr.std_error < report.ips.std_error  # the reward model removes variance


def test_named_candidates_and_unrewarded_rows(logged: Any) -> None:
    records = load_log(logged.settings)
    records.reward[:1000] = np.nan  # rewards not in yet
    fixed = evaluate(records, "arm:a2")
    assert fixed.n == 2000
    assert fixed.dr.low <= 0.3 <= fixed.dr.high
    assert evaluate(records, "arm:a2", missing_reward="zero").n == 3000
    with pytest.raises(InvalidRequest):
        evaluate(records, "arm:nope")
    with pytest.raises(InvalidRequest):
        evaluate(records, np.ones((3, 5)))


def test_run_ope_trains_a_learning_candidate_and_prints(logged: Any) -> None:
    console = Console(record=True, width=120)
    report = run_ope(logged.settings, "greedy", console=console, epsilon=0.0)
    text = console.export_text()
    assert "doubly robust" in text and "SNIPS" in text and "greedy" in text
    assert report.n == 1500  # evaluated on the half it was not trained on
    assert (
        report.dr.value > report.logging.value
    )  # exploiting the learned model beats exploring half the time


def test_holdout_and_capped_rows_are_not_evaluated(embedded_router: Any) -> None:
    router = embedded_router(policy="uniform", holdout_share=0.5, contact_cap=0)
    d = router.decide_sync(
        np.arange(100),
        np.zeros((100, 2), np.float32),
        eligible=np.ones(100, bool),
        model_versions={},
    )
    router.feedback_many(list(d.decision_id), np.ones(100))
    report = evaluate(load_log(router.settings), "uniform")
    assert report.n == int((d.reason == "policy").sum()) < 100


def test_uplift_against_the_holdout(embedded_router: Any) -> None:
    router = embedded_router(policy="uniform", holdout_share=0.3, contact_cap=0)
    n = 4000
    d = router.decide_sync(
        np.arange(n), np.zeros((n, 2), np.float32), eligible=np.ones(n, bool), model_versions={}
    )
    rng = np.random.default_rng(0)
    rate = np.where(d.reason == "holdout", 0.10, 0.25)  # contacting lifts the rate by 0.15
    router.feedback_many(list(d.decision_id), (rng.random(n) < rate).astype(float))
    lift = uplift(load_log(router.settings))
    assert lift.low <= 0.15 <= lift.high and lift.low > 0


def test_an_empty_log_reports_nothing_rather_than_failing(tmp_path: Any) -> None:
    from serving.settings import BanditSettings

    console = Console(record=True, width=120)
    for candidate in ("uniform", "thompson"):
        report = run_ope(BanditSettings(state_path=tmp_path), candidate, console=console)
        assert report.n == 0 and np.isnan(report.dr.value)
    assert "no rewarded policy decisions" in console.export_text()
