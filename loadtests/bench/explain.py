"""`reengage bench explain`: explanations per second beside scoring, in one run.

In-process, on the built workspace (online store and model repository as
``reengage build`` left them), through the same ``DataPlane`` the routes call, so the
figures are the work a request does after parsing and before encoding, without HTTP:

- ``score``: ``/v1/score`` (feature read, both models; bandit off so the decision log
  does not grow), the baseline;
- ``score + explain``: ``/v1/score`` with ``"explain": k``;
- ``explain``: ``/v1/explain`` (both models' explainers);
- ``churn TreeSHAP`` / ``engagement DeepLIFT``: one model's explainer alone on the
  same feature rows (``ModelService.explain``).

The cases run interleaved, round by round (A, B, C, ... then the reverse order), so each
ratio to ``score`` comes from the same moments of a noisy shared machine.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from serving.settings import Settings


def _dataplane(settings: Settings) -> Any:
    from serving.components.features import FeatureLookup, model_feature_services
    from serving.components.models import ModelService
    from serving.dataplane import DataPlane

    features = FeatureLookup(settings.features, model_feature_services(settings))
    models = {
        name: ModelService(name, settings.models)
        for name in (settings.models.churn, settings.models.engagement)
    }
    return DataPlane(settings, features, models)


def run_explain_bench(
    settings: Settings,
    customers: int = 1_000,
    top_k: int = 5,
    rounds: int = 5,
    console: Console | None = None,
) -> dict[str, Any]:
    """Median seconds per call of each case over ``rounds`` interleaved rounds; printed and
    returned."""
    console = console or Console()
    settings = settings.model_copy(
        update={"bandit": settings.bandit.model_copy(update={"enabled": False})}
    )
    return asyncio.run(_run(settings, customers, top_k, rounds, console))


async def _run(
    settings: Settings, customers: int, top_k: int, rounds: int, console: Console
) -> dict[str, Any]:
    dp = _dataplane(settings)
    rng = np.random.default_rng(0)
    ids = rng.choice(settings.data.customers, size=customers, replace=False).astype(np.int64)
    batch = await dp.features.lookup(ids)
    values, names = batch.values[batch.found], batch.names
    churn, engagement = dp.models[settings.models.churn], dp.models[settings.models.engagement]
    cases: dict[str, Callable[[], Awaitable[Any]]] = {
        "score": lambda: dp.inference.score(ids),
        f"score + explain {top_k}": lambda: dp.inference.score(ids, explain=top_k),
        f"explain {top_k}": lambda: dp.inference.explain(ids, top_k),
        "churn TreeSHAP": lambda: churn.explain(values, names),
        "engagement DeepLIFT": lambda: engagement.explain(values, names),
    }
    for case in cases.values():  # warm: explainers load, sessions initialise
        await case()
    times: dict[str, list[float]] = {name: [] for name in cases}
    order = list(cases)
    for r in range(rounds):
        for name in order if r % 2 == 0 else order[::-1]:
            start = time.perf_counter()
            await cases[name]()
            times[name].append(time.perf_counter() - start)
    versions = (await dp.inference.score(ids[:1])).model_versions
    result = {
        "customers": customers,
        "found": int(batch.found.sum()),
        "top_k": top_k,
        "rounds": rounds,
        "model_versions": versions,
        "median_s": {name: statistics.median(t) for name, t in times.items()},
    }
    _print(result, console)
    return result


def _print(result: dict[str, Any], console: Console) -> None:
    med = result["median_s"]
    base = med["score"]
    table = Table(
        title=f"{result['customers']:,} customers per call ({result['found']:,} found), "
        f"median of {result['rounds']} interleaved rounds, versions {result['model_versions']}"
    )
    for col in ("case", "ms / call", "customers / s", "x score time"):
        table.add_column(col, justify="right" if col != "case" else "left")
    for name, seconds in med.items():
        table.add_row(
            name,
            f"{1e3 * seconds:,.1f}",
            f"{result['customers'] / seconds:,.0f}",
            f"{seconds / base:.1f}",
        )
    console.print(table)
