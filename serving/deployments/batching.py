"""``serve.batch`` as a model service's batcher inside a Serve replica, when chosen.

The default batcher is ``AsyncBatcher`` (``serving.components.batching``); this one
runs when ``models.batcher`` is ``serve``.

``serve.batch`` is wrapped around the bound ``run_group`` of each model service, not
used as a method decorator: a decorated method keeps one queue per *function*, which
would merge two models' rows when both live in one replica (the fused topology).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, cast

from ray import serve

from serving.components.batching import Inputs, RunGroup, rows_of


class _BatchedGroup(Protocol):
    """What ``serve.batch`` makes of ``run_group``: one call per request, plus its knobs."""

    async def __call__(self, inputs: Inputs, version: str) -> Inputs: ...

    def set_max_batch_size(self, new_max_batch_size: int) -> None: ...

    def set_batch_wait_timeout_s(self, new_batch_wait_timeout_s: float) -> None: ...


# Ray's stubs type serve.batch for one-argument functions only (``run_group`` takes the
# inputs and the versions) and omit the knobs its wrapper carries: stated here, once.
_serve_batch = cast(Callable[..., _BatchedGroup], serve.batch)


def _rows(items: list[Inputs]) -> int:
    """Batch size in rows (customers), not in requests: serve.batch's ``batch_size_fn``."""
    return sum(rows_of(item) for item in items)


class ServeBatcher:
    """The ``Batcher`` protocol over ``serve.batch``: batch size in rows, limits live."""

    def __init__(
        self, run_group: RunGroup, max_batch_size: int = 1024, wait_s: float = 0.0
    ) -> None:
        self._run = _serve_batch(
            run_group,
            max_batch_size=max_batch_size,
            batch_wait_timeout_s=wait_s,
            batch_size_fn=_rows,
        )

    async def submit(self, inputs: Inputs, version: str) -> Inputs:
        return await self._run(inputs, version)

    def configure(self, max_batch_size: int, wait_s: float) -> None:
        self._run.set_max_batch_size(max(int(max_batch_size), 1))
        self._run.set_batch_wait_timeout_s(wait_s)
