"""Blocking dependency calls with a deadline the caller enforces.

A socket timeout bounds one call inside the thread that makes it; it does not bound the
wait for a free thread, and a hung server can hold every thread. So the caller waits at
most ``timeout_s`` for the whole call (queueing included) and then answers with the
component's own error; a call still queued is cancelled, one already running finishes in
its thread and is dropped. Calls run on the component's own small pool, so a hung
dependency cannot starve the default executor that other components share.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")


async def call_with_deadline(
    pool: ThreadPoolExecutor,
    timeout_s: float,
    on_timeout: Callable[[], Exception],
    fn: Callable[..., T],
    *args: object,
) -> T:
    """``fn(*args)`` on ``pool``; ``on_timeout()`` is raised when it has not returned within
    ``timeout_s``."""
    future = asyncio.get_running_loop().run_in_executor(pool, fn, *args)
    try:
        return await asyncio.wait_for(future, timeout_s)
    except TimeoutError:
        raise on_timeout() from None
