"""What ``/v1/monitor`` does: every replica's counts in a window against the references."""

from __future__ import annotations

from serving.errors import DependencyUnavailable
from serving.monitoring import Monitor, MonitorReport, window_report
from serving.settings import Settings


class MonitorPlane:
    """The drift report over this replica's monitor (which reads every replica's buckets)."""

    def __init__(self, settings: Settings, monitor: Monitor | None) -> None:
        self.settings = settings
        self.monitor = monitor

    async def report(self, since: float | None, window_s: int | None) -> MonitorReport:
        """The ``/v1/monitor`` answer; a 503 when monitoring is off on this server."""
        if self.monitor is None:
            raise DependencyUnavailable(
                "model monitoring is off on this server (monitor.enabled=false)"
            )
        return await window_report(self.monitor, self.settings.monitor, since, window_s)
