"""The exporter: counters exact, histograms sampled to a bound per label set and interval."""

from __future__ import annotations

import numpy as np

from serving.deployments.metrics_export import Exporter
from serving.metrics import Recorder


def test_histograms_are_capped_by_a_uniform_sample_and_small_ones_pass_whole() -> None:
    exporter = Exporter(Recorder(), interval_s=1.0, max_observations=50)
    few = [1.0, 2.0, 3.0]
    assert exporter.sample(few) == few
    many = list(np.arange(10_000, dtype=float))
    picked = exporter.sample(many)
    assert len(picked) == 50 and len(set(picked)) == 50 and set(picked) <= set(many)
    assert 2_000 < np.mean(picked) < 8_000  # spread over the whole interval, not its start


class _Counter:
    def __init__(self) -> None:
        self.calls: list[tuple[float, dict]] = []

    def inc(self, value: float, tags: dict) -> None:
        self.calls.append((value, tags))

    observe = inc


def test_flush_sends_one_inc_per_label_set_and_bounded_observations() -> None:
    recorder = Recorder()
    exporter = Exporter(recorder, interval_s=1.0, max_observations=10)
    counter, histogram = _Counter(), _Counter()
    exporter._metrics = {
        "reengage_requests_total": counter,
        "reengage_request_latency_ms": histogram,
    }
    for _ in range(500):
        recorder.inc("reengage_requests_total", 1, ("/v1/score", "200"))
        recorder.observe("reengage_request_latency_ms", 2.0, ("/v1/score",))
    exporter.flush()
    assert counter.calls == [(500.0, {"route": "/v1/score", "status": "200"})]
    assert len(histogram.calls) == 10 and histogram.calls[0] == (2.0, {"route": "/v1/score"})
    assert recorder.drain() == ({}, {})
