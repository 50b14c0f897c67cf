"""What waits in the committer's queue: a decision record, its contact reservation, and
the future its caller awaits (an asyncio future of the caller's loop on the serving path,
a thread future for offline callers). Resolving crosses threads, so it goes through the
caller's loop when there is one."""

from __future__ import annotations

import asyncio
from concurrent.futures import Future
from dataclasses import dataclass

from serving.bandit.state.base import Reservation
from serving.bandit.state.records import BatchRecord
from serving.errors import DependencyUnavailable, Overloaded

# What a reservation's caller waits on: an asyncio future of the caller's loop (the serving
# path: resolved through call_soon_threadsafe, cheaper than wrapping a thread future),
# or a thread future (offline callers).
Waiter = Future[None] | asyncio.Future[None]


@dataclass
class Entry:
    record: BatchRecord
    reservation: Reservation | None
    waiter: Waiter | None
    seq: int
    queued_at: float
    tries: int = 0  # failed commits not caused by the store being unavailable

    def resolve(self, err: BaseException | None = None) -> None:
        if isinstance(self.waiter, Future):
            _set(self.waiter, err)
        elif self.waiter is not None:
            try:
                self.waiter.get_loop().call_soon_threadsafe(_set, self.waiter, err)
            except RuntimeError:  # the caller's loop is closed: nobody is waiting any more
                pass


def _set(waiter: Waiter, err: BaseException | None) -> None:
    if waiter.done():  # an asyncio caller that was cancelled
        return
    if err is None:
        waiter.set_result(None)
    else:
        waiter.set_exception(err)


def unavailable(exc: BaseException) -> bool:
    """The store is down or slow (retry everything as is), not refusing one record."""
    return isinstance(exc, (DependencyUnavailable, Overloaded, OSError, TimeoutError))
