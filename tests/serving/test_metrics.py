from __future__ import annotations


def test_metrics_helpers_accept_decision_arrays() -> None:
    import numpy as np

    from serving import metrics

    action = np.array(["discount_offer", None, "no_contact"], dtype=object)
    reason = np.array(["policy", "not_found", "holdout"], dtype=object)
    metrics.decisions(action, reason)  # a None action (unknown customer) once broke this
