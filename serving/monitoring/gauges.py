"""The Prometheus gauges of monitoring: a thread in each replica computes the window's answer
every ``gauge_interval_s`` and sets ``serving.metrics``' gauges from it. Every replica reads
the same shared buckets, so each exports the application-wide figures (dashboards take
``max``)."""

from __future__ import annotations

import logging
import threading
import time

from serving import metrics
from serving.monitoring.collector import Monitor
from serving.monitoring.report import report
from serving.monitoring.report_types import MonitorReport, Thresholds
from serving.settings import MonitorSettings

log = logging.getLogger("reengage")


def refresh(monitor: Monitor, m: MonitorSettings) -> MonitorReport:
    """One answer over the last ``window_s`` seconds, set as gauges; returned for callers."""
    now = time.time()
    answer = report(
        monitor.store,
        monitor.references,
        Thresholds(m.psi_threshold, m.min_rows),
        int(now) - m.window_s + 1,
        int(now),
        now,
    )
    metrics.monitor_report(answer.to_json())
    return answer


def start(monitor: Monitor, m: MonitorSettings) -> threading.Thread | None:
    if m.gauge_interval_s <= 0:
        return None

    def run() -> None:
        while not monitor.stopped.wait(m.gauge_interval_s):
            try:
                refresh(monitor, m)
            except Exception:  # the store being down must not stop the next refresh
                log.warning("monitor gauges failed", exc_info=True)

    thread = threading.Thread(target=run, name="reengage-monitor-gauges", daemon=True)
    thread.start()
    return thread
