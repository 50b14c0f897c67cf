"""Decision throughput of the bandit router: decisions/s at 1,000 contexts a call.

For each policy and backend, measures (a) the policy math alone (probabilities + draw)
and (b) the whole ``decide_sync`` (holdout, policy, and the wait for the contact
reservation, which the background committer writes together with the log record),
on a state trained by a few thousand rewards so the linear policies invert real matrices.
"""

from __future__ import annotations

import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from serving.bandit.policies import sample_actions
from serving.bandit.router import BanditRouter
from serving.settings import BanditSettings

POLICIES = ("uniform", "thompson", "linucb", "lin_ts")
CONTEXT = ["churn_probability", "engagement_probability", "f0", "f1", "f2", "f3"]


def _time(fn: Any, repeats: int) -> float:
    """Median seconds per call after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def _router(policy: str, backend: str, state_path: Path, redis_url: str | None) -> BanditRouter:
    name = f"bench-{policy}-{uuid.uuid4().hex[:8]}"
    settings = BanditSettings(
        policy=policy,
        backend=backend,
        state_path=state_path,
        name=name,
        seed=0,
        redis_url=redis_url or "redis://127.0.0.1:6379/0",
        context_features=CONTEXT,
    )
    router = BanditRouter(settings)
    rng = np.random.default_rng(1)
    x = rng.random((2000, len(CONTEXT))).astype(np.float32)
    dec = router.decide_sync(
        rng.integers(0, 1 << 40, 2000), x, eligible=np.ones(2000, bool), model_versions={}
    )
    ok = dec.decision_id != None  # noqa: E711 - object array of str | None
    router.feedback_many(list(dec.decision_id[ok]), rng.random(int(ok.sum())).round())
    router.sync(force=True)
    return router


def bench_one(router: BanditRouter, n: int, repeats: int) -> dict[str, float]:
    rng = np.random.default_rng(2)
    x = rng.random((n, len(router.context_names))).astype(np.float32)
    ok = np.ones(n, bool)
    math = _time(
        lambda: sample_actions(router.policy.probabilities(x, router.stats, rng), rng), repeats
    )
    # fresh customers each call, so contact caps check and record (not just reject)
    whole = _time(
        lambda: router.decide_sync(
            rng.integers(0, 1 << 40, n), x, eligible=ok, model_versions={"churn": "1"}
        ),
        repeats,
    )
    return {
        "policy_ms": math * 1e3,
        "policy_decisions_per_s": n / math,
        "decide_ms": whole * 1e3,
        "decisions_per_s": n / whole,
    }


def run_bandit_bench(
    console: Any = None, *, redis_url: str | None = None, n: int = 1000, repeats: int = 20
) -> dict[str, Any]:
    """{backend: {policy: {policy_ms, policy_decisions_per_s, decide_ms, decisions_per_s}}}."""
    backends = ["embedded"] + (["redis"] if redis_url else [])
    results: dict[str, Any] = {"n": n, "repeats": repeats}
    with tempfile.TemporaryDirectory() as tmp:
        for backend in backends:
            results[backend] = {}
            for policy in POLICIES:
                router = _router(policy, backend, Path(tmp), redis_url)
                try:
                    results[backend][policy] = bench_one(router, n, repeats)
                finally:
                    drop = getattr(router.store, "drop", None)
                    if drop is not None:  # leave no benchmark keys in a real Redis
                        drop()
                    router.close()
        results["single_row_cpu_us"] = {
            b: single_row_cpu(b, Path(tmp), redis_url) * 1e6 for b in backends
        }
    if console is not None:
        _print(results, console)
    return results


def single_row_cpu(
    backend: str, state_path: Path, redis_url: str | None, *, calls: int = 4000, in_flight: int = 4
) -> float:
    """Process CPU seconds per one-customer ``decide`` (caps on, the committer thread's work
    included), ``in_flight`` concurrent callers on one event loop, as an ingress replica."""
    import asyncio

    router = _router("thompson", backend, state_path, redis_url)
    rng = np.random.default_rng(4)
    x, ok = rng.random((1, len(CONTEXT))).astype(np.float32), np.ones(1, bool)

    async def caller(n: int) -> None:
        for _ in range(n):
            await router.decide(
                rng.integers(0, 1 << 40, 1), x, eligible=ok, model_versions={"churn": "1"}
            )

    async def run() -> float:
        await asyncio.gather(
            *(caller(calls // in_flight // 4) for _ in range(in_flight))
        )  # warm-up
        t0 = time.process_time()
        await asyncio.gather(*(caller(calls // in_flight) for _ in range(in_flight)))
        await asyncio.to_thread(router.flush, 60.0)
        return (time.process_time() - t0) / calls

    try:
        return asyncio.run(run())
    finally:
        drop = getattr(router.store, "drop", None)
        if drop is not None:
            drop()
        router.close()


def _store_bytes(router: BanditRouter) -> int:
    """What the store holds: sqlite pages in use, or Redis's whole ``used_memory`` (the
    streams, the pending keys of open reward windows and the contact counters)."""
    store: Any = router.store
    if router.settings.backend == "redis":
        return int(store.r.info("memory")["used_memory"])
    return int(store._used_bytes())


def log_size_one(
    backend: str, state_path: Path, redis_url: str | None, rows: int, total: int
) -> float:
    """Bytes per decision once ``total`` decisions went in as batches of ``rows``."""
    router = _router("thompson", backend, state_path, redis_url)
    try:
        rng = np.random.default_rng(3)
        x = rng.random((rows, len(CONTEXT))).astype(np.float32)
        router.flush(30.0)
        before = _store_bytes(router)
        for _ in range(total // rows):  # fresh customers: every contacted row takes a cap counter
            router.decide_sync(
                rng.integers(0, 1 << 40, rows),
                x,
                eligible=np.ones(rows, bool),
                model_versions={"churn": "1", "engagement": "1"},
            )
        router.flush(60.0)
        return (_store_bytes(router) - before) / total
    finally:
        drop = getattr(router.store, "drop", None)
        if drop is not None:
            drop()
        router.close()


def run_log_size_bench(
    console: Any = None,
    *,
    redis_url: str | None = None,
    plan: tuple[tuple[int, int], ...] = ((1, 20_000), (100, 200_000), (1000, 500_000)),
) -> dict[str, Any]:
    """{backend: {rows a batch: MB per million decisions}}, measured on ``total`` decisions each."""
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for backend in ["embedded"] + (["redis"] if redis_url else []):
            results[backend] = {
                rows: log_size_one(backend, Path(tmp), redis_url, rows, total) * 1e6 / 2**20
                for rows, total in plan
            }
    if console is not None:
        from rich.table import Table

        table = Table(
            title="Decision-log storage, MB per million decisions "
            "(contact caps on, 6 context features)"
        )
        table.add_column("backend")
        for rows, total in plan:
            table.add_column(f"{rows} a batch ({total:,} measured)", justify="right")
        for backend, per in results.items():
            table.add_row(backend, *(f"{per[rows]:,.0f}" for rows, _ in plan))
        console.print(table)
    return results


def _print(results: dict[str, Any], console: Any) -> None:
    from rich.table import Table

    table = Table(
        title=f"Bandit decisions, {results['n']} contexts a call (median of {results['repeats']})"
    )
    for col in (
        "backend",
        "policy",
        "policy math ms",
        "policy decisions/s",
        "decide ms",
        "decide decisions/s",
    ):
        table.add_column(col, justify="right" if "ms" in col or "/s" in col else "left")
    for backend in ("embedded", "redis"):
        for policy, r in results.get(backend, {}).items():
            table.add_row(
                backend,
                policy,
                f"{r['policy_ms']:.2f}",
                f"{r['policy_decisions_per_s']:,.0f}",
                f"{r['decide_ms']:.2f}",
                f"{r['decisions_per_s']:,.0f}",
            )
    console.print(table)
    for backend, us in results.get("single_row_cpu_us", {}).items():
        console.print(
            f"{backend}: one-customer decide (thompson, caps on, 4 in flight): "
            f"{us:.0f} us of process CPU each"
        )
