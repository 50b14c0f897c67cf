"""Where blocking work runs: inline on the event loop, or in a thread.

Measured here (2 cores, 2 ingress replicas, docs/benchmarks.md): scoring 1,000 ids with
4 requests in flight cost 14.3 ms of CPU per request when the feature read and the model
calls went to threads, 6.0 ms inline: the threads only contended for the GIL and the
cores. So in-memory work (LMDB reads, model runtimes) runs inline up to ``offload_rows``
rows (a setting; lower it on machines with spare cores per replica), and network I/O
(Redis) always runs in a thread, so a slow store never stalls the loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


async def offload(rows: int, limit: int, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run ``fn`` inline when ``rows`` is below ``limit``, else in the default thread pool."""
    if rows < limit:
        return fn(*args, **kwargs)
    return await asyncio.to_thread(fn, *args, **kwargs)
