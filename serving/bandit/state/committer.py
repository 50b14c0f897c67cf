"""The background committer: decisions reach the state store in groups, off the request's path.

Why: a decision's bookkeeping (its log record, and the contact reservation of the rows
that reach a customer) was one sqlite transaction or Redis round trip per request, on
the event loop. Here ``decide`` hands it to one thread per router, which writes all that
waits in one ``StateStore.commit``: one transaction (sqlite), or one reservation script
plus one MULTI/EXEC (Redis). Plain threads, no asyncio, so offline callers use it too.

Flush policy
  A record with no reservation (holdout, not-found and control-arm rows, caps off) is
  acknowledged at once and committed within ``flush_interval_s`` of being queued, sooner
  when ``flush_rows`` rows wait or a reservation wakes the thread. A reservation wakes the
  thread at once and its request waits for the commit; requests that arrive while a
  commit runs form the next group (group commit), so under load one transaction serves
  many requests and an idle replica answers in one transaction's time.

Bound
  Queued plus in-flight rows stay under ``queue_rows`` (an empty queue admits one request
  of any size). When full, ``submit`` raises ``Overloaded`` (503, Retry-After) before
  anything is queued, written or reserved: nothing is dropped, no contact is taken.

Exactness of contact caps (within a replica and across replicas)
  The check-and-record of every reservation is one atomic step of the store. Embedded:
  an LMDB write transaction of the contact ledger, which holds LMDB's writer lock across
  the machine's processes for microseconds, so ``submit`` runs it on the caller's thread
  (after the bound check, under this committer's lock) and the request waits for no
  commit. Redis: one Lua script, which Redis runs alone, for the whole group in the
  writer thread; within a group reservations apply in queue order, each seeing the
  contacts granted before it, and the request learns its rows once the script ran. Rows
  over the cap become the control arm (``Reservation.settle``) before the record is
  logged. So no customer gets more than ``cap`` contacts per window, whatever the
  interleaving. Failures err towards fewer contacts: a reservation whose step failed is
  refused (503); on Redis, a script that ran but whose reply was lost, or whose log write
  then failed, keeps its contacts counted.

Failures and shutdown
  A failed commit refuses the group's reservations and puts its log-only records back at
  the head of the queue, in order; the thread retries after a backoff (up to 1 s, at once
  when a reservation arrives). Nothing is dropped silently: while the store is down the
  bound fills and ``decide`` raises ``Overloaded``. ``close`` commits everything queued,
  retrying until its timeout, and logs an error naming what it could not write; an
  ``atexit`` hook closes a committer nobody closed.

Poison records
  A failure that is not the store being unavailable (``DependencyUnavailable``, a socket
  error, a timeout) may be the fault of one record. Every log-only record of such a group
  counts a try, and records that failed before are then committed one at a time, so the
  others go through. A record that fails alone ``max_tries`` times goes to the dead
  letters (``deadletter.DeadLetters``: a file, a metric, a warning) and the queue moves
  on; an outage counts no tries, so it never turns good records into dead letters.

What a crash loses
  A kill -9 loses the records acknowledged but not yet committed: those of at most the
  last ``flush_interval_s`` plus one commit's duration. A commit is a few statements
  (sqlite) or one pipeline (Redis) whatever the group's size, since each call that
  releases the GIL can wait a switch interval (5 ms) to get it back from a busy event
  loop; so the commit's duration, and what a crash loses, grows when the event loop never
  idles. Decisions with a
  reservation are acknowledged only after their commit, so a crash loses none of them,
  nor any contact count. ``tests/bandit/test_bandit_crash.py`` kills a router
  mid-stream and checks it.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future

from serving.bandit.state.base import Group, Reservation, StateStore
from serving.bandit.state.pending import Entry, Waiter, unavailable
from serving.bandit.state.deadletter import DeadLetters
from serving.bandit.state.records import BatchRecord
from serving.errors import DependencyUnavailable, Overloaded, ReengageError

log = logging.getLogger("reengage.bandit")

MAX_BACKOFF_S = 1.0
RETRY_AFTER_S = 1.0  # what an Overloaded answer tells the client


class GroupCommitter:
    """One writer thread per router; ``submit`` from any thread, ``close`` to drain it."""

    def __init__(
        self,
        store: StateStore,
        *,
        flush_interval_s: float = 0.05,
        queue_rows: int = 100_000,
        flush_rows: int = 10_000,
        ttl_s: float = 7 * 24 * 3600.0,
        refresh: Callable[[], object] | None = None,
        refresh_interval_s: float = 1.0,
        name: str = "bandit",
        max_tries: int = 5,
        dead_letters: DeadLetters | None = None,
    ) -> None:
        self.store = store
        self.max_tries = max(1, max_tries)
        self.dead_letters = (
            dead_letters if dead_letters is not None else DeadLetters(None, name=name)
        )
        # a store that reserves contacts in microseconds does it on the caller's thread (sqlite's
        # LMDB ledger); one that needs a round trip (Redis) reserves in the group commit
        self._reserve_now: Callable[[Reservation], None] | None = getattr(
            store, "reserve_now", None
        )
        self.flush_interval_s, self.queue_rows, self.flush_rows, self.ttl_s = (
            flush_interval_s,
            queue_rows,
            flush_rows,
            ttl_s,
        )
        self._refresh = refresh
        self._refresh_every = max(refresh_interval_s, flush_interval_s)
        self._next_refresh = time.monotonic() + self._refresh_every if refresh else float("inf")
        self._lock = threading.Lock()  # guards the state below
        self._wake = threading.Condition(self._lock)  # the writer thread waits on it for work
        self._progress = threading.Condition(
            self._lock
        )  # flush() and wait_for() wait on it for commits
        self._queue: deque[Entry] = deque()
        self._batches: dict[
            str, int
        ] = {}  # batch id -> seq, until committed (feedback waits on it)
        self._rows = 0  # queued + in-flight rows: what the bound counts
        self._reserving = False  # a queued reservation wants a commit now
        self._seq = self._done = 0  # last seq handed out; every seq <= _done is resolved
        self._urgent = 0  # flush / wait_for callers waiting
        self._not_before, self._failures, self._refresh_failures = 0.0, 0, 0
        self._closing, self._deadline = False, float("inf")
        self.commits = self.committed = 0  # groups written, and the decide calls they held
        self._thread = threading.Thread(target=self._run, name=f"bandit-commit-{name}", daemon=True)
        atexit.register(self._close_at_exit)
        self._thread.start()

    # ------------------------------------------------------------------ request side
    def submit(
        self,
        record: BatchRecord,
        reservation: Reservation | None = None,
        *,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> Waiter | None:
        """Queue a record (and its reservation). With a reservation, returns what resolves once
        it is committed: a future of ``loop`` (call from that loop) or else a thread future.
        Raises ``Overloaded``, queuing nothing, when full or closing."""
        with self._lock:
            self._admit(record.n)  # before any side effect: a refused request reserves nothing
            if reservation is not None and self._reserve_now is not None:
                self._reserve_now(reservation)  # settles the record; it is then log-only
                reservation = None
            self._seq += 1
            waiter: Waiter | None = None
            if reservation is not None:
                waiter = loop.create_future() if loop is not None else Future()
            wake = not self._queue or reservation is not None
            self._queue.append(Entry(record, reservation, waiter, self._seq, time.monotonic()))
            self._batches[record.batch_id] = self._seq
            self._rows += record.n
            self._reserving |= reservation is not None
            if wake or self._rows >= self.flush_rows:
                self._wake.notify()
        return waiter

    def _admit(self, n: int) -> None:
        if not self._thread.is_alive() and not self._closing:
            raise DependencyUnavailable(
                "bandit state: the decision-log writer stopped (see the replica log)"
            )
        if self._closing:
            raise Overloaded(
                "the bandit router is shutting down; retry on another replica",
                retry_after_s=RETRY_AFTER_S,
            )
        if self._rows and self._rows + n > self.queue_rows:
            raise Overloaded(
                f"the bandit decision log is behind: {self._rows} rows wait for the state store",
                retry_after_s=RETRY_AFTER_S,
            )

    @property
    def healthy(self) -> bool:
        """Readiness: the thread runs, and neither the last commit nor the last refresh failed
        (the refresh reads the store every ``refresh_interval_s`` even with no traffic)."""
        return self._thread.is_alive() and not self._failures and not self._refresh_failures

    @property
    def queued_rows(self) -> int:
        return self._rows

    def flush(self, timeout_s: float | None = None) -> bool:
        """Commit everything submitted so far now; False if that did not happen in time."""
        with self._lock:
            return self._await(self._seq, timeout_s)

    def wait_for(self, batch_ids: Iterable[str], timeout_s: float | None = None) -> bool:
        """Wait until these batches (if queued here) are committed: a reward must find its
        decision even when it arrives within the flush interval."""
        with self._lock:
            return self._await(
                max((self._batches.get(b, 0) for b in batch_ids), default=0), timeout_s
            )

    def _await(self, target: int, timeout_s: float | None) -> bool:
        if target <= self._done:
            return True
        self._urgent += 1
        self._wake.notify()
        try:
            return (
                self._progress.wait_for(
                    lambda: self._done >= target or not self._thread.is_alive(), timeout_s
                )
                and self._done >= target
            )
        finally:
            self._urgent -= 1

    def refresh_soon(self) -> None:
        """Have the thread re-read the shared statistics at its next turn."""
        if self._refresh is None:
            return
        with self._lock:
            self._next_refresh = 0.0
            self._wake.notify()

    def close(self, timeout_s: float = 10.0) -> None:
        """Stop taking decisions, commit what is queued (retrying up to ``timeout_s``), stop."""
        with self._lock:
            if not self._closing:
                self._closing, self._deadline = True, time.monotonic() + timeout_s
                self._wake.notify()
        self._thread.join(timeout_s + 5.0)
        atexit.unregister(self._close_at_exit)

    def _close_at_exit(self) -> None:
        self.close(timeout_s=5.0)

    # ------------------------------------------------------------------ writer thread
    def _run(self) -> None:
        try:
            while (entries := self._take()) is not None:
                if entries:
                    self._commit(entries)
                self._maybe_refresh()
        except BaseException:  # a bug: say so; submit() then refuses instead of queuing forever
            log.exception("bandit state writer stopped")
            raise
        finally:
            with self._lock:
                self._progress.notify_all()  # flush() callers stop waiting on a stopped thread

    def _take(self) -> list[Entry] | None:
        """The next group (all that is queued) when due; [] when a refresh is due; None: stop."""
        with self._lock:
            while True:
                now = time.monotonic()
                if self._closing and (not self._queue or now >= self._deadline):
                    self._abandon()
                    return None
                if self._due(now):
                    if self._queue[
                        0
                    ].tries:  # it failed before (maybe poison): alone, so the rest pass
                        entries = [self._queue.popleft()]
                    else:
                        entries = list(self._queue)
                        self._queue.clear()
                    self._reserving = False
                    return entries
                if now >= self._next_refresh:
                    return []
                self._wake.wait(self._wait_s(now))

    def _hurry(self) -> bool:
        return self._reserving or self._closing or self._urgent > 0 or self._rows >= self.flush_rows

    def _due(self, now: float) -> bool:
        if not self._queue or (now < self._not_before and not self._reserving):
            return False  # nothing to do, or backing off after a failure
        return self._hurry() or now >= self._queue[0].queued_at + self.flush_interval_s

    def _wait_s(self, now: float) -> float | None:
        """Until the oldest record is due, a backoff ends, a refresh or the close deadline;
        None: nothing is scheduled, sleep until notified."""
        until = min(self._next_refresh, self._deadline)
        if self._queue:
            ready = now if self._hurry() else self._queue[0].queued_at + self.flush_interval_s
            until = min(until, max(ready, self._not_before))
        return None if until == float("inf") else max(until - now, 0.0)

    def _commit(self, entries: list[Entry]) -> None:
        reservations = [e.reservation for e in entries if e.reservation is not None]
        try:
            self.store.commit(Group([e.record for e in entries], reservations, self.ttl_s))
        except Exception as exc:  # the store's errors and anything else: keep the records, retry
            self._failed(entries, exc)
            return
        self._committed(entries)

    def _committed(self, entries: list[Entry]) -> None:
        with self._lock:
            self._resolve(entries)
            self._settle_done()
            if self._failures:
                log.info("bandit state writes recovered after %d failed attempts", self._failures)
            self._failures, self._not_before = 0, 0.0
            self.commits, self.committed = self.commits + 1, self.committed + len(entries)
            self._progress.notify_all()
        for e in entries:
            e.resolve()

    def _settle_done(self) -> None:
        """Every seq before the queue's head is resolved (one commit runs at a time, and the
        queue is in seq order); flush() and wait_for() wait on this."""
        self._done = self._queue[0].seq - 1 if self._queue else self._seq

    def _failed(self, entries: list[Entry], exc: Exception) -> None:
        err = (
            exc
            if isinstance(exc, ReengageError)
            else DependencyUnavailable(f"bandit state write failed: {exc!r}")
        )
        kept = [e for e in entries if e.reservation is None]
        refused = [e for e in entries if e.reservation is not None]
        dead: list[Entry] = []
        if not unavailable(exc):  # maybe a poison record: count a try against each
            for e in kept:
                e.tries += 1
            if len(entries) == 1 and kept and kept[0].tries >= self.max_tries:
                dead, kept = kept, []
        with self._lock:
            self._queue.extendleft(reversed(kept))  # back at the head, in order
            self._resolve(refused + dead)
            self._settle_done()
            if dead:  # the queue moves on: the store itself works
                self._failures, self._not_before = 0, 0.0
            else:
                self._failures += 1
                self._not_before = time.monotonic() + min(
                    MAX_BACKOFF_S, self.flush_interval_s * 2**self._failures
                )
            self._progress.notify_all()
        for e in dead:
            self.dead_letters.put(e.record, exc, e.tries)
        if not dead:
            log.log(
                logging.WARNING if self._failures == 1 else logging.DEBUG,
                "bandit state write failed (%d rows kept queued, %d reservations refused): %s",
                sum(e.record.n for e in kept),
                len(refused),
                err,
            )
        for e in refused:
            e.resolve(err)

    def _resolve(self, entries: list[Entry]) -> None:
        """Committed or refused: no longer counted by the bound nor awaited by feedback."""
        for e in entries:
            self._rows -= e.record.n
            if self._batches.get(e.record.batch_id) == e.seq:
                del self._batches[e.record.batch_id]

    def _abandon(self) -> None:
        """Closing with the store still failing at the deadline: say what is lost, loudly."""
        if not self._queue:
            return
        rows = sum(e.record.n for e in self._queue)
        log.error(
            "bandit: %d decision rows in %d batches could not be written before shutdown",
            rows,
            len(self._queue),
        )
        err = DependencyUnavailable("bandit state unavailable at shutdown")
        for e in self._queue:
            e.resolve(err)
        self._resolve(list(self._queue))
        self._queue.clear()

    def _maybe_refresh(self) -> None:
        if self._refresh is None or time.monotonic() < self._next_refresh:
            return
        self._next_refresh = time.monotonic() + self._refresh_every
        try:
            self._refresh()
        except Exception as exc:  # keep deciding on the last statistics; the next turn retries
            self._refresh_failures += 1
            log.log(
                logging.WARNING if self._refresh_failures == 1 else logging.DEBUG,
                "bandit state refresh failed (deciding on the last statistics): %s",
                exc,
            )
        else:
            self._refresh_failures = 0
