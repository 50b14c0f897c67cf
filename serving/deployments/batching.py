"""``serve.batch`` as a model service's batcher inside a Serve replica, when chosen.

The default batcher is ``AsyncBatcher`` (``serving.components.batching``); this one
runs when ``models.batcher`` is ``serve``.

``serve.batch`` is wrapped around the bound ``run_group`` of each model service, not
used as a method decorator: a decorated method keeps one queue per *function*, which
would merge two models' rows when both live in one replica (the fused topology).
"""

from __future__ import annotations

from typing import Any

from ray import serve

from serving.components.batching import Inputs, RunGroup, rows_of


def _rows(items: list[Inputs]) -> int:
    """Batch size in rows (customers), not in requests: serve.batch's ``batch_size_fn``."""
    return sum(rows_of(item) for item in items)


class ServeBatcher:
    def __init__(
        self, run_group: RunGroup, max_batch_size: int = 1024, wait_s: float = 0.0
    ) -> None:
        self._run: Any = serve.batch(
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
