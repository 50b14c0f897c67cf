"""Pushes the in-process metrics (``serving.metrics``) to Ray's metrics agent.

Replicas are separate processes, so metrics go through ``ray.serve.metrics`` (Ray's
agent on each node exports them for Prometheus, with deployment, replica and
application labels added). One daemon thread per process drains the recorder every
``interval_s``: a counter costs one Ray call per label set and interval, whatever the
request rate, and stays exact.

Ray's histogram takes one call per observation, and exporting every observation costs
a large share of 1-id throughput under load (docs/benchmarks.md, "What moved the
figures"). So each histogram label set exports at most
``max_observations`` observations per interval, a uniform sample of what was recorded:
quantiles and averages stay unbiased, while a histogram's ``_count`` undercounts under
load: rates come from the counters (``reengage_requests_total`` and the others), which
are exact.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import numpy as np
from ray.serve.metrics import Counter, Gauge, Histogram

from serving.metrics import DEFINITIONS, RECORDER, MetricDef, Recorder

log = logging.getLogger("reengage")
_started = threading.Lock()
_exporter: "Exporter | None" = None


def _tags(definition: MetricDef) -> Any:
    """The tag names as Ray takes them (any length; its annotation says a 1-tuple)."""
    return definition.tag_keys


class Exporter:
    def __init__(self, recorder: Recorder, interval_s: float, max_observations: int = 25) -> None:
        self.recorder = recorder
        self.interval_s = interval_s
        self.max_observations = max_observations
        self._metrics: dict[str, Any] = {}
        self._rng = np.random.default_rng()

    def _metric(self, definition: MetricDef) -> Any:
        metric = self._metrics.get(definition.name)
        if metric is None:
            if definition.kind == "counter":
                metric = Counter(
                    definition.name, description=definition.description, tag_keys=_tags(definition)
                )
            elif definition.kind == "gauge":
                metric = Gauge(
                    definition.name, description=definition.description, tag_keys=_tags(definition)
                )
            else:
                metric = Histogram(
                    definition.name,
                    description=definition.description,
                    boundaries=list(definition.boundaries),
                    tag_keys=_tags(definition),
                )
            self._metrics[definition.name] = metric
        return metric

    def flush(self) -> None:
        counts, samples = self.recorder.drain()
        for (name, tags), value in counts.items():
            definition = DEFINITIONS[name]
            self._metric(definition).inc(value, tags=dict(zip(definition.tag_keys, tags)))
        for (name, tags), values in samples.items():
            definition = DEFINITIONS[name]
            metric, tag_map = self._metric(definition), dict(zip(definition.tag_keys, tags))
            for value in self.sample(values):  # Ray's histogram takes one observation per call
                metric.observe(value, tags=tag_map)
        for (name, tags), value in self.recorder.drain_gauges().items():
            definition = DEFINITIONS[name]
            self._metric(definition).set(value, tags=dict(zip(definition.tag_keys, tags)))

    def sample(self, values: list[float]) -> list[float]:
        """All of them, or a uniform sample of ``max_observations`` (without replacement)."""
        if len(values) <= self.max_observations:
            return [float(v) for v in values]
        picked = self._rng.choice(len(values), self.max_observations, replace=False)
        return np.asarray(values, dtype=np.float64)[picked].tolist()

    def run(self) -> None:
        while True:
            time.sleep(self.interval_s)
            try:
                self.flush()
            except Exception:  # a failed export must not stop the next one
                log.exception("metrics export failed")


def start_exporter(interval_s: float = 1.0) -> None:
    """Start this process's exporter once (every deployment calls it at start)."""
    global _exporter
    with _started:
        if _exporter is None:
            _exporter = Exporter(RECORDER, interval_s)
            threading.Thread(target=_exporter.run, name="reengage-metrics", daemon=True).start()
