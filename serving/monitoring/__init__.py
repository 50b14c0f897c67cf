"""Model monitoring inside the server: drift against each version's reference, actions
and contact rates by segment (``/v1/monitor``). Plain Python: no Ray, no HTTP."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from serving.errors import InvalidRequest
from serving.monitoring.collector import Monitor, Observation, Scored
from serving.monitoring.reference import References
from serving.monitoring.report import Thresholds, report
from serving.settings import MonitorSettings, Settings

__all__ = ["Monitor", "Observation", "References", "Scored", "Thresholds", "open_monitor", "report",
           "window_report"]


def open_monitor(settings: Settings, *, start: bool = True) -> Monitor | None:
    """This replica's collector over the deployment's shared state (None when monitoring is off)."""
    from serving.shared_state import open_shared_state

    m = settings.monitor
    if not m.enabled:
        return None
    monitor = Monitor(open_shared_state(settings), References(settings.models.repo_path),
                      flush_interval_s=m.flush_interval_s, retention_s=m.retention_s, queue_max=m.queue_max)
    if start:
        from serving.monitoring import gauges

        monitor.start()
        gauges.start(monitor, m)
    return monitor


async def window_report(monitor: Monitor, m: MonitorSettings, since: float | None,
                        window_s: int | None) -> dict[str, Any]:
    """The answer for ``since`` (epoch seconds) or the last ``window_s`` seconds up to now;
    this replica's queued rows are flushed first, and the store reads and sums run on a
    worker thread, off the event loop."""
    now = time.time()
    start = int(since) if since is not None else int(now) - (window_s or m.window_s) + 1
    if start < now - m.retention_s:
        raise InvalidRequest(f"the window starts before the {m.retention_s} s kept (monitor.retention_s)",
                             field="since" if since is not None else "window_s")
    if start > now:
        raise InvalidRequest("since is in the future", field="since")
    await asyncio.to_thread(monitor.flush)
    thresholds = Thresholds(psi=m.psi_threshold, min_rows=m.min_rows)
    return await asyncio.to_thread(report, monitor.store, monitor.references, thresholds, start, int(now), now)
