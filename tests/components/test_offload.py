"""Where blocking work runs: inline below the row limit, in threads above it, and the two
model calls of a request in turn (inline) or together (threads)."""

from __future__ import annotations

import asyncio
import gc
import threading
import warnings

import pytest

from serving.components.offload import both, offload


def test_offload_inline_below_the_limit_and_in_a_thread_at_it() -> None:
    async def run(rows: int) -> str:
        return await offload(rows, 100, lambda: threading.current_thread().name)

    main = threading.current_thread().name
    assert asyncio.run(run(99)) == main
    assert asyncio.run(run(100)) != main


def test_both_inline_runs_in_the_callers_task_in_order() -> None:
    seen: list[tuple[str, object]] = []

    async def call(name: str) -> str:
        seen.append((name, asyncio.current_task()))
        return name

    async def main() -> tuple[tuple[str, str], object]:
        return await both(1, 100, call("churn"), call("engagement")), asyncio.current_task()

    (first, second), caller = asyncio.run(main())
    assert (first, second) == ("churn", "engagement")
    assert [name for name, _ in seen] == ["churn", "engagement"]
    assert all(task is caller for _, task in seen)  # no task of their own


def test_both_at_the_limit_overlaps_the_two_calls() -> None:
    barrier = threading.Barrier(2, timeout=5)  # passes only when both wait at once

    async def call(name: str) -> str:
        await asyncio.to_thread(barrier.wait)
        return name

    assert asyncio.run(both(100, 100, call("churn"), call("engagement"))) == ("churn", "engagement")


def test_both_inline_failure_raises_it_and_closes_the_second_unstarted() -> None:
    started: list[str] = []

    async def fail() -> None:
        raise RuntimeError("churn model failed")

    async def second() -> str:
        started.append("engagement")
        return "engagement"

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "coroutine was never awaited" would surface here
        with pytest.raises(RuntimeError, match="churn model failed"):
            asyncio.run(both(1, 100, fail(), second()))
        gc.collect()
    assert started == []
