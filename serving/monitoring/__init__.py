"""Model monitoring inside the server: drift against each version's reference, actions
and contact rates by segment (``/v1/monitor``). Plain Python: no Ray, no HTTP."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import numpy as np

from serving.errors import InvalidRequest
from serving.monitoring.collector import Monitor
from serving.monitoring.observation import Observation, Scored
from serving.monitoring.reference import References
from serving.monitoring.report import report
from serving.monitoring.report_types import MonitorReport, Thresholds
from serving.settings import MonitorSettings, Settings

__all__ = [
    "Monitor",
    "MonitorReport",
    "Observation",
    "References",
    "Scored",
    "Thresholds",
    "observation",
    "open_monitor",
    "report",
    "window_report",
]

_HOLDOUT = (
    1  # REASONS.index("holdout") of serving.bandit.state.records (a sibling layer; a test checks)
)


def open_monitor(settings: Settings, *, start: bool = True) -> Monitor | None:
    """This replica's collector over the deployment's shared state (None when monitoring is off)."""
    from serving.shared_state import open_shared_state

    m = settings.monitor
    if not m.enabled:
        return None
    monitor = Monitor(
        open_shared_state(settings),
        References(settings.models.repo_path),
        flush_interval_s=m.flush_interval_s,
        retention_s=m.retention_s,
        queue_max=m.queue_max,
    )
    if start:
        from serving.monitoring import gauges

        monitor.start()
        gauges.start(monitor, m)
    return monitor


async def window_report(
    monitor: Monitor, m: MonitorSettings, since: float | None, window_s: int | None
) -> MonitorReport:
    """The answer for ``since`` (epoch seconds) or the last ``window_s`` seconds up to now;
    this replica's queued rows are flushed first, and the store reads and sums run on a
    worker thread, off the event loop."""
    now = time.time()
    start = int(since) if since is not None else int(now) - (window_s or m.window_s) + 1
    if start < now - m.retention_s:
        raise InvalidRequest(
            f"the window starts before the {m.retention_s} s kept (monitor.retention_s)",
            field="since" if since is not None else "window_s",
        )
    if start > now:
        raise InvalidRequest("since is in the future", field="since")
    await asyncio.to_thread(monitor.flush)
    thresholds = Thresholds(psi=m.psi_threshold, min_rows=m.min_rows)
    return await asyncio.to_thread(
        report, monitor.store, monitor.references, thresholds, start, int(now), now
    )


def observation(
    result: Any,
    values: np.ndarray,
    names: tuple[str, ...],
    rows: np.ndarray | slice,
    forced: str | None,
    settings: Settings,
) -> Observation:
    """What the monitor keeps of one scored request (the dataplane's ``ScoreResult``): the found
    rows' features, each model's versions and scores, the decisions. ``forced``: the action
    /v1/reengage takes instead of the bandit's. References only, no copy of the features."""
    split = result.row_versions or {}
    models = {}
    for role, name, col in (
        ("churn", settings.models.churn, result.churn_probability),
        ("engagement", settings.models.engagement, result.engagement_probability),
    ):
        codes, versions = (split[role][0][rows], split[role][1]) if role in split else (None, ())
        models[name] = Scored(result.model_versions[role], col[rows], codes, versions)
    d, n = result.decisions, len(values)
    arms: tuple[str, ...] = ()
    arm_index = propensity = holdout = None
    if forced is not None:
        arms = tuple(settings.bandit.arms)
        arm_index, holdout = np.full(n, arms.index(forced), np.int64), np.zeros(n, bool)
    elif d is not None:
        arms, arm_index, propensity = d.arms, d.arm_index[rows], d.propensity[rows]
        holdout = d.reason_code[rows] == _HOLDOUT
    return Observation(
        time.time(),
        values,
        names,
        models,
        result.churn_probability[rows],
        arm_index,
        arms,
        propensity,
        holdout,
        settings.bandit.control_arm,
    )
