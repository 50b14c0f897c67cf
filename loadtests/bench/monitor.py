"""`reengage bench monitor`: what monitoring costs a /v1/score request, on and off, in one run.

In-process, on the built workspace, through the same ``DataPlane`` the routes call (feature
read, both models; bandit off so the decision log does not grow), so the figures are the
request's work after parsing and before encoding, without HTTP:

- ``off``: a DataPlane without a monitor;
- ``on``: the same features and models with a monitor whose thread bins and flushes to a
  shared state in a temporary directory once a second, as in a replica;
- ``binning``: the monitor thread's own work for one request's rows (``Monitor.add``:
  per feature and score bins of both models, segments), which runs off the request:
  for a request alone, and per request when ``QUEUED`` requests wait together (the thread
  joins the batches of a second before binning them).

Each call size (1 and 1,000 ids by default) runs ``off`` and ``on`` interleaved, call by
call in alternating order, so both see the same moments of a noisy shared machine; the
medians and the spread between rounds are printed.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from serving.settings import Settings

QUEUED = 100  # requests the monitor thread finds queued together (a second of traffic holds more)


def run_monitor_bench(
    settings: Settings,
    sizes: tuple[int, ...] = (1, 1000),
    calls: int = 400,
    rounds: int = 5,
    console: Console | None = None,
) -> dict[str, Any]:
    """Median microseconds per call of each case and size; printed and returned."""
    console = console or Console()
    settings = settings.model_copy(
        update={"bandit": settings.bandit.model_copy(update={"enabled": False})}
    )
    with tempfile.TemporaryDirectory() as tmp:
        return asyncio.run(_run(settings, sizes, calls, rounds, Path(tmp), console))


async def _run(
    settings: Settings, sizes: tuple[int, ...], calls: int, rounds: int, tmp: Path, console: Console
) -> dict[str, Any]:
    from serving.components.features import FeatureLookup, model_feature_services
    from serving.components.models import ModelService
    from serving.dataplane import DataPlane
    from serving.monitoring import Monitor, References
    from serving.shared_state import SqliteSharedState

    features = FeatureLookup(settings.features, model_feature_services(settings))
    models: dict[str, Any] = {
        n: ModelService(n, settings.models)
        for n in (settings.models.churn, settings.models.engagement)
    }
    monitor = Monitor(
        SqliteSharedState(tmp / "shared.sqlite"), References(settings.models.repo_path)
    ).start()
    off, on = (
        DataPlane(settings, features, models),
        DataPlane(settings, features, models, monitor=monitor),
    )
    rng = np.random.default_rng(0)
    result: dict[str, Any] = {"calls": calls, "rounds": rounds, "sizes": {}}
    for n in sizes:
        ids = [
            rng.choice(settings.data.customers, size=n, replace=False).astype(np.int64) + 1
            for _ in range(64)
        ]
        for dp in (off, on):  # warm
            for i in range(20):
                await dp.inference.score(ids[i % 64])
        per_round: dict[str, list[float]] = {"off": [], "on": []}
        for r in range(rounds):
            t = {"off": 0.0, "on": 0.0}
            for i in range(calls):
                pair = (
                    (("off", off), ("on", on)) if (i + r) % 2 == 0 else (("on", on), ("off", off))
                )
                for name, dp in pair:
                    start = time.perf_counter()
                    await dp.inference.score(ids[i % 64])
                    t[name] += time.perf_counter() - start
            for name in t:
                per_round[name].append(1e6 * t[name] / calls)
        result["sizes"][n] = {
            **{name: statistics.median(v) for name, v in per_round.items()},
            **{f"{name}_rounds": v for name, v in per_round.items()},
            **_binning(monitor, await _capture(on, ids[0])),
        }
    monitor.close()
    result["binned_rows"] = "every scored row (no sampling)"
    _print(result, console)
    return result


def _binning(monitor: Any, obs: Any) -> dict[str, float]:
    from serving.monitoring.collector import JOIN_ROWS

    queued = max(1, min(QUEUED, JOIN_ROWS // max(len(obs.values), 1)))  # what the thread joins
    return {
        "binning_us": _binning_us(monitor, obs),
        "binning_queued_us": _binning_us(monitor, obs, queued),
    }


async def _capture(dp: Any, ids: np.ndarray) -> Any:
    """The observation one request of ``ids`` hands the monitor."""
    held: list[Any] = []
    real = dp.monitor.observe
    dp.monitor.observe = held.append
    try:
        await dp.inference.score(ids)
    finally:
        dp.monitor.observe = real
    return held[0]


def _binning_us(monitor: Any, obs: Any, queued: int = 1, repeat: int = 50) -> float:
    """The monitor thread's work per request: median microseconds of binning ``queued``
    copies of one request's observation (joined first, as the thread does), over ``queued``."""
    from serving.monitoring.collector import Bucket
    from serving.monitoring.observation import join

    times = []
    for _ in range(repeat):
        bucket = Bucket(0, monitor._n_segments)  # noqa: SLF001 (the thread's own bucket)
        start = time.perf_counter()
        monitor.add(
            bucket, join([obs] * queued) if queued > 1 else obs
        )  # at most JOIN_ROWS rows, as the thread joins
        times.append(time.perf_counter() - start)
    return 1e6 * statistics.median(times) / queued


def _print(result: dict[str, Any], console: Console) -> None:
    table = Table(
        title=f"/v1/score in-process, monitoring off vs on: median of {result['rounds']} rounds "
        f"x {result['calls']} interleaved calls"
    )
    for col in (
        "ids / call",
        "off us / call",
        "on us / call",
        "on - off",
        "rounds off (us)",
        "rounds on (us)",
        "binning us: alone",
        f"binning us: joined ({QUEUED} requests, at most JOIN_ROWS rows)",
    ):
        table.add_column(col, justify="right")
    for n, r in result["sizes"].items():
        table.add_row(
            f"{n:,}",
            f"{r['off']:,.0f}",
            f"{r['on']:,.0f}",
            f"{r['on'] - r['off']:+,.0f}",
            " ".join(f"{v:,.0f}" for v in r["off_rounds"]),
            " ".join(f"{v:,.0f}" for v in r["on_rounds"]),
            f"{r['binning_us']:,.0f}",
            f"{r['binning_queued_us']:,.1f}",
        )
    console.print(table)
