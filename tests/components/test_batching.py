"""Dynamic batching without Serve: calls merge into groups by rows and split back."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from serving.components.batching import AsyncBatcher, InlineBatcher, Inputs


class Recorder:
    """run_group that echoes each call's rows times 10 and records the groups it saw."""

    def __init__(self) -> None:
        self.groups: list[tuple[list[int], list[str]]] = []

    async def __call__(self, inputs: list[Inputs], versions: list[str]) -> list[Inputs]:
        self.groups.append(([len(i["x"]) for i in inputs], list(versions)))
        return [{"y": i["x"] * 10} for i in inputs]


def call(n: int, start: int) -> Inputs:
    return {"x": np.arange(start, start + n, dtype=np.float32)}


async def _gather(batcher: AsyncBatcher, sizes: list[int], versions: list[str]) -> list[Inputs]:
    starts = np.cumsum([0, *sizes])[:-1]
    return await asyncio.gather(
        *(batcher.submit(call(n, int(s)), v) for n, s, v in zip(sizes, starts, versions))
    )


def test_concurrent_calls_merge_into_one_group_and_split_back() -> None:
    run = Recorder()
    batcher = AsyncBatcher(run, max_batch_size=100, wait_s=0.001)
    results = asyncio.run(_gather(batcher, [2, 3, 4], ["1", "2", "1"]))
    assert run.groups == [([2, 3, 4], ["1", "2", "1"])]
    for result, (n, s) in zip(results, [(2, 0), (3, 2), (4, 5)]):
        np.testing.assert_array_equal(result["y"], np.arange(s, s + n, dtype=np.float32) * 10)


def test_groups_are_capped_in_rows_not_requests() -> None:
    run = Recorder()
    batcher = AsyncBatcher(run, max_batch_size=5, wait_s=0.001)
    asyncio.run(_gather(batcher, [2, 3, 4, 9], ["1"] * 4))
    # arrival order kept; a call above the cap runs alone rather than being refused
    assert [g[0] for g in run.groups] == [[2, 3], [4], [9]]


def test_a_failed_group_fails_each_of_its_callers_and_the_next_group_runs() -> None:
    calls = 0

    async def flaky(inputs: list[Inputs], versions: list[str]) -> list[Inputs]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("runtime down")
        return [{"y": i["x"]} for i in inputs]

    async def scenario() -> list[object]:
        batcher = AsyncBatcher(flaky, max_batch_size=2, wait_s=0.001)
        return await asyncio.gather(
            *(batcher.submit(call(1, k), "1") for k in range(3)), return_exceptions=True
        )

    results = asyncio.run(scenario())
    assert [isinstance(r, RuntimeError) for r in results] == [True, True, False]


def test_inline_batcher_never_merges() -> None:
    run = Recorder()
    batcher = InlineBatcher(run)

    async def scenario() -> None:
        await asyncio.gather(batcher.submit(call(2, 0), "1"), batcher.submit(call(3, 2), "1"))

    asyncio.run(scenario())
    assert [g[0] for g in run.groups] == [[2], [3]]


@pytest.mark.parametrize("wait_s", [0.0, 0.05])
def test_wait_collects_calls_made_later(wait_s: float) -> None:
    run = Recorder()
    batcher = AsyncBatcher(run, max_batch_size=100, wait_s=wait_s)

    async def scenario() -> None:
        first = asyncio.ensure_future(batcher.submit(call(1, 0), "1"))
        await asyncio.sleep(0.001)  # a later loop iteration
        await asyncio.gather(first, batcher.submit(call(1, 1), "1"))

    asyncio.run(scenario())
    assert len(run.groups) == (2 if wait_s == 0 else 1)


def test_without_wait_calls_arriving_during_a_running_group_form_the_next_group() -> None:
    release = asyncio.Event()
    groups: list[list[int]] = []

    async def slow(inputs: list[Inputs], versions: list[str]) -> list[Inputs]:
        groups.append([len(i["x"]) for i in inputs])
        if len(groups) == 1:
            await release.wait()  # a large batch away in a thread
        return [{"y": i["x"]} for i in inputs]

    async def scenario() -> list[Inputs]:
        batcher = AsyncBatcher(slow, max_batch_size=100, wait_s=0.0)
        first = asyncio.ensure_future(batcher.submit(call(7, 0), "1"))
        await asyncio.sleep(0)
        later = [asyncio.ensure_future(batcher.submit(call(n, 0), "1")) for n in (1, 2)]
        await asyncio.sleep(0)
        release.set()
        return await asyncio.gather(first, *later)

    results = asyncio.run(scenario())
    assert groups == [[7], [1, 2]]
    assert [len(r["y"]) for r in results] == [7, 1, 2]
