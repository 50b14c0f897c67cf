"""Pushes the in-process metrics (``serving.metrics``) to Ray's metrics agent.

Replicas are separate processes, so metrics go through ``ray.serve.metrics`` (Ray's
agent on each node exports them for Prometheus, with deployment, replica and
application labels added). One daemon thread per process drains the recorder every
``interval_s``: a counter costs one Ray call per label set and interval, whatever the
request rate.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from ray.serve.metrics import Counter, Histogram

from serving.metrics import DEFINITIONS, RECORDER, MetricDef, Recorder

log = logging.getLogger("reengage")
_started = threading.Lock()
_exporter: "Exporter | None" = None


class Exporter:
    def __init__(self, recorder: Recorder, interval_s: float) -> None:
        self.recorder = recorder
        self.interval_s = interval_s
        self._metrics: dict[str, Any] = {}

    def _metric(self, definition: MetricDef) -> Any:
        metric = self._metrics.get(definition.name)
        if metric is None:
            if definition.kind == "counter":
                metric = Counter(definition.name, description=definition.description, tag_keys=definition.tag_keys)
            else:
                metric = Histogram(definition.name, description=definition.description,
                                   boundaries=list(definition.boundaries), tag_keys=definition.tag_keys)
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
            for value in values:  # Ray's histogram takes one observation per call
                metric.observe(float(value), tags=tag_map)

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
