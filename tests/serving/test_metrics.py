"""Metrics are aggregated in-process: what a request records, and what a drain returns."""

from __future__ import annotations

import numpy as np

from serving import metrics


def _drain() -> tuple[dict, dict]:
    return metrics.RECORDER.drain()


def test_counters_sum_per_label_set_and_drain_empties_them() -> None:
    _drain()
    for _ in range(3):
        metrics.request("/v1/score", 200, 1.5)
    metrics.request("/v1/score", 422, 0.5)
    counts, samples = _drain()
    assert counts[("reengage_requests_total", ("/v1/score", "200"))] == 3
    assert counts[("reengage_requests_total", ("/v1/score", "422"))] == 1
    assert samples[("reengage_request_latency_ms", ("/v1/score",))] == [1.5, 1.5, 1.5, 0.5]
    assert _drain() == ({}, {})


def test_decisions_count_per_action_and_reason_including_none() -> None:
    _drain()
    arms, reasons = (
        ("discount_offer", "no_contact"),
        ("policy", "holdout", "contact_cap", "not_found"),
    )
    metrics.decisions(np.array([0, -1, 1, 0]), np.array([0, 3, 1, 0], np.uint8), arms, reasons)
    counts, _ = _drain()
    assert counts == {
        ("reengage_bandit_decisions_total", ("discount_offer", "policy")): 2,
        ("reengage_bandit_decisions_total", ("None", "not_found")): 1,
        ("reengage_bandit_decisions_total", ("no_contact", "holdout")): 1,
    }


class _Batch:
    views = ("profile", "activity")

    def __init__(self) -> None:
        self.found = np.array([True, True, False, False])
        self.view_found = np.array([[True, True], [True, False], [False, False], [False, False]])
        self.expired = np.array([[False, False], [False, True], [False, False], [False, False]])
        self.schema_mismatch = np.array(
            [[False, False], [False, False], [True, False], [False, False]]
        )

    def __len__(self) -> int:
        return 4


def test_feature_rows_by_view_and_state_add_up_to_the_batch() -> None:
    _drain()
    metrics.feature_read(_Batch(), 0.7)
    counts, samples = _drain()
    rows = {tags: n for (name, tags), n in counts.items() if name == "reengage_feature_rows_total"}
    assert rows == {
        ("profile", "ok"): 2,
        ("activity", "ok"): 1,
        ("activity", "expired"): 1,
        ("profile", "schema_mismatch"): 1,
        ("profile", "missing"): 1,
        ("activity", "missing"): 2,
    }
    assert samples[("reengage_feature_read_latency_ms", ())] == [0.7]


def test_every_recorded_metric_is_defined_with_matching_labels() -> None:
    _drain()
    metrics.request("/x", 200, 1.0)
    metrics.scored(np.array([True, False]))
    metrics.model_call("churn", "1", 10, 0.2)
    metrics.reward("discount_offer")
    metrics.email("transformers", False)
    counts, samples = _drain()
    for name, tags in [*counts, *samples]:
        assert len(metrics.DEFINITIONS[name].tag_keys) == len(tags), name
