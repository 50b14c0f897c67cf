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
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")
U = TypeVar("U")


async def offload(rows: int, limit: int, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run ``fn`` inline when ``rows`` is below ``limit``, else in the default thread pool."""
    if rows < limit:
        return fn(*args, **kwargs)
    return await asyncio.to_thread(fn, *args, **kwargs)


async def both(
    rows: int, limit: int, first: Coroutine[Any, Any, T], second: Coroutine[Any, Any, U]
) -> tuple[T, U]:
    """Two calls over the same ``rows``: one after the other when they run inline (below
    ``limit``), since neither then waits for anything and ``gather``'s two tasks cost more
    than the calls (docs/benchmarks.md); together when they run in threads, where they
    overlap on two cores."""
    if rows >= limit:
        done, then = await asyncio.gather(first, second)
        return done, then
    try:
        done = await first
    except BaseException:
        second.close()  # never started: no "never awaited" warning
        raise
    return done, await second
