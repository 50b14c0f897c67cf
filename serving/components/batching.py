"""Dynamic batching by rows, injected into the model service.

The model service hands every call to a ``Batcher``; the batcher decides how calls are
grouped and calls back ``run_group(inputs, versions)`` with one list per group, which
runs one ONNX Runtime call per version over the merged rows and splits them back.
Two implementations share that contract:

- ``AsyncBatcher`` (here): plain asyncio, the batcher everywhere by default, Serve
  replicas included (``models.batcher: asyncio``), and so merging and splitting are
  testable without a cluster;
- ``ServeBatcher`` (``serving.deployments.batching``): Ray Serve's ``serve.batch``, the
  alternative a Serve replica uses when ``models.batcher`` is ``serve``.

Batch size is counted in rows (customers), not requests, capped by ``max_batch_size``
from config.pbtxt; a call larger than the cap runs alone.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Protocol

import numpy as np

Inputs = dict[str, np.ndarray]
RunGroup = Callable[[list[Inputs], list[str]], Awaitable[list[Inputs]]]


def rows_of(inputs: Inputs) -> int:
    """Rows of one call: the first dimension of its first input."""
    return len(next(iter(inputs.values())))


class Batcher(Protocol):
    """Groups concurrent ``submit`` calls into ``run_group`` calls."""

    async def submit(self, inputs: Inputs, version: str) -> Inputs: ...

    def configure(self, max_batch_size: int, wait_s: float) -> None: ...


class InlineBatcher:
    """No grouping: each call is its own group (the reference for tests)."""

    def __init__(self, run_group: RunGroup) -> None:
        self._run_group = run_group

    async def submit(self, inputs: Inputs, version: str) -> Inputs:
        return (await self._run_group([inputs], [version]))[0]

    def configure(self, max_batch_size: int, wait_s: float) -> None:
        """Nothing to configure: there is no queue."""


class AsyncBatcher:
    """Calls queued while the event loop was busy run as one group.

    With ``wait_s`` 0 an idle batcher runs a call at once (nothing to wait for: the
    loop was free); calls arriving while a group runs (in a thread, for large batches)
    queue and run as the next group. With ``wait_s`` > 0 the first queued call schedules
    a flush after ``wait_s``. A flush takes queued calls in arrival order up to
    ``max_batch_size`` rows and leaves the rest for the next flush.
    """

    def __init__(
        self, run_group: RunGroup, max_batch_size: int = 1024, wait_s: float = 0.0
    ) -> None:
        self._run_group = run_group
        self._queue: list[tuple[Inputs, str, asyncio.Future[Inputs]]] = []
        self._flushing = False
        self.configure(max_batch_size, wait_s)

    def configure(self, max_batch_size: int, wait_s: float) -> None:
        self.max_batch_size = max(int(max_batch_size), 1)
        self.wait_s = max(float(wait_s), 0.0)

    async def submit(self, inputs: Inputs, version: str) -> Inputs:
        if not self._flushing and self.wait_s == 0:
            return await self._run_now(inputs, version)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Inputs] = loop.create_future()
        self._queue.append((inputs, version, future))
        if not self._flushing:
            self._flushing = True
            if self.wait_s > 0:
                loop.call_later(self.wait_s, self._start_flush)
            else:
                loop.call_soon(self._start_flush)
        return await future

    async def _run_now(self, inputs: Inputs, version: str) -> Inputs:
        """Idle batcher, no wait: run at once, with no future and no task. Calls that
        arrive while this one is away (a large batch in a thread) queue up and run
        together right after it."""
        self._flushing = True
        try:
            return (await self._run_group([inputs], [version]))[0]
        finally:
            if self._queue:
                asyncio.get_running_loop().call_soon(self._start_flush)
            else:
                self._flushing = False

    def _start_flush(self) -> None:
        asyncio.get_running_loop().create_task(self._flush())

    async def _flush(self) -> None:
        while self._queue:
            group = self._take()
            try:
                results = await self._run_group([g[0] for g in group], [g[1] for g in group])
            except Exception as exc:  # every caller of the group sees the failure
                for _, _, future in group:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for (_, _, future), result in zip(group, results):
                if not future.done():
                    future.set_result(result)
        self._flushing = False

    def _take(self) -> list[tuple[Inputs, str, asyncio.Future[Inputs]]]:
        """Queued calls in arrival order up to the row cap (at least one)."""
        rows, n = 0, 0
        for inputs, _, _ in self._queue:
            size = rows_of(inputs)
            if n and rows + size > self.max_batch_size:
                break
            rows, n = rows + size, n + 1
        group, self._queue = self._queue[:n], self._queue[n:]
        return group
