"""The audit log: every admin action, one JSON line each, appended and fsync'd.

``<data_dir>/audit.jsonl`` by default (``auth.audit_log``), mode 0600. Each line::

    {"time": "2026-11-30T19:40:01.123Z", "ts": 1795808401.123, "actor": "admin",
     "action": "repository.unload", "model": "churn", "version": null,
     "result": "ok" | "error" | "denied", "message": "...", "details": {...}, "pid": 4242}

Every replica appends to the same file: one ``write`` of one line to a descriptor opened
with ``O_APPEND`` (lines do not interleave), then ``fsync`` before the call returns. The
file rotates by size and age (``auth.audit_rotation``; ``serving.logfiles``), and
``reengage audit`` reads the rotated files too.

Refused admin calls (401/403) are audited without blocking the caller: ``refused`` takes
a per-source token bucket (``auth.refused_log_per_s`` lines a second per client address)
and hands the line to a background writer thread, without fsync. Over the rate a line is
not written but counted; once a second the writer appends one line per source saying how
many of its refusals were suppressed (``details.suppressed``; also the metric
``reengage_audit_suppressed_total``), so a flood grows the log by a bounded rate and is
never silent.

The API for admin code::

    from serving import audit
    audit.record(settings, "rollout.promote", actor=actor, model="churn", version="3",
                 result="ok", message="", details={"forced": True})       # sync, fsync'd
    async with audit.action(settings, "rollout.start", actor=actor, model="churn") as entry:
        entry["version"] = "3"; entry["details"]["weights"] = {...}     # filled in by the body
        ...                                                              # ok, or error + message
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import json
import logging
import math
import os
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any, Literal

from feature_store.redact import redact, redact_mapping
from serving import metrics
from serving.errors import status_and_body
from serving.logfiles import RotatingFile
from serving.settings import RotationSettings, Settings

log = logging.getLogger("reengage")

Result = Literal["ok", "error", "denied"]
RESULTS: tuple[str, ...] = ("ok", "error", "denied")
OTHER_SOURCES = "(other sources)"  # the shared bucket once ``max_sources`` are tracked
MAX_PENDING = 10_000  # refusal lines waiting for the writer thread; beyond, counted as suppressed
SUMMARY_S = 1.0  # how often the writer appends the suppressed counts


def refusal_lines_bound(per_s: float, seconds: float) -> int:
    """The most lines one source's refusals add to the log of one process in any window of
    ``seconds``: a full bucket (``max(1, per_s)``) plus its refill, and a suppressed-count
    line per ``SUMMARY_S`` (one more for a window that straddles a summary's time)."""
    return math.floor(max(1.0, per_s) + per_s * seconds) + math.ceil(seconds / SUMMARY_S) + 1


class RefusalLimiter:
    """A token bucket per source: ``per_s`` lines a second, bursts of as many (at least 1)."""

    def __init__(self, per_s: float, max_sources: int) -> None:
        self.per_s, self.burst, self.max_sources = per_s, max(1.0, per_s), max_sources
        self._buckets: dict[str, list[float]] = {}  # source -> [tokens, last time, suppressed]
        self._lock = threading.Lock()

    def allow(self, source: str, now: float) -> bool:
        """Whether a line of ``source`` may be written now; if not, it is counted."""
        with self._lock:
            bucket = self._buckets.get(source)
            if bucket is None:
                if len(self._buckets) >= self.max_sources:
                    source = OTHER_SOURCES
                    bucket = self._buckets.get(source)
                if bucket is None:
                    bucket = self._buckets[source] = [self.burst, now, 0.0]
            bucket[0] = min(self.burst, bucket[0] + (now - bucket[1]) * self.per_s)
            bucket[1] = now
            if bucket[0] >= 1.0:
                bucket[0] -= 1.0
                return True
            bucket[2] += 1
            return False

    def count(self, source: str) -> None:
        """One more suppressed line of ``source`` (its line was allowed but could not be queued)."""
        with self._lock:
            bucket = self._buckets.get(source) or self._buckets.setdefault(
                OTHER_SOURCES, [0.0, 0.0, 0.0]
            )
            bucket[2] += 1

    def suppressed(self, now: float) -> list[tuple[str, int]]:
        """(source, count) suppressed since the last call; forgets sources quiet and refilled."""
        out: list[tuple[str, int]] = []
        with self._lock:
            for source, bucket in list(self._buckets.items()):
                if bucket[2]:
                    out.append((source, int(bucket[2])))
                    bucket[2] = 0.0
                elif bucket[0] + (now - bucket[1]) * self.per_s >= self.burst:
                    del self._buckets[source]
        return out


class AuditLog:
    def __init__(
        self,
        path: Path,
        rotation: RotationSettings | None = None,
        refused_per_s: float = 5.0,
        max_sources: int = 10_000,
    ) -> None:
        self.path = path
        rotation = rotation or RotationSettings()
        self._file = RotatingFile(
            path,
            max_bytes=rotation.max_bytes,
            max_age_s=rotation.max_age_s,
            backups=rotation.backups,
            mode=0o600,
        )
        self.limiter = RefusalLimiter(refused_per_s, max_sources)
        self._pending: deque[dict[str, Any]] = deque()
        self._wake = threading.Condition()
        self._writer: threading.Thread | None = None
        self._writing = False  # the writer holds lines taken from _pending

    def record(
        self,
        action: str,
        *,
        actor: str,
        model: str | None = None,
        version: str | None = None,
        result: Result = "ok",
        message: str = "",
        details: dict[str, Any] | None = None,
        durable: bool = True,
    ) -> dict[str, Any]:
        """Append one entry (fsync'd unless ``durable`` is false) and return it."""
        if result not in RESULTS:
            raise ValueError(f"result must be one of {RESULTS}, got {result!r}")
        entry = self._entry(action, actor, model, version, result, message, details)
        with self._wake:  # refusals queued before this entry go first: the log keeps their order
            self._wake.wait_for(lambda: not self._writing, 1.0)
            early, self._writing = list(self._pending), True
            self._pending.clear()
        try:
            self._file.write(b"".join(_line(e) for e in [*early, entry]), durable=durable)
        finally:
            with self._wake:
                self._writing = False
                self._wake.notify_all()
        return entry

    @staticmethod
    def _entry(
        action: str,
        actor: str,
        model: str | None,
        version: str | None,
        result: Result,
        message: str,
        details: dict[str, Any] | None,
    ) -> dict[str, Any]:
        now = time.time()
        return {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now))
            + f".{int(now * 1000) % 1000:03d}Z",
            "ts": round(now, 3),
            "actor": actor,
            "action": action,
            "model": model,
            "version": None if version is None else str(version),
            "result": result,
            "message": redact(message),
            "details": redact_mapping(details or {}),
            "pid": os.getpid(),
        }

    def refused(self, action: str, *, actor: str | Any, source: str, message: str) -> bool:
        """A refused call, audited off the caller's thread within the per-source rate; over
        it, counted and summed up later. ``actor`` may be a callable (naming the caller
        costs a hash: only paid for a line that is written). Returns whether it is written."""
        if not self.limiter.allow(source, time.monotonic()):
            metrics.audit_suppressed(1)
            return False
        name = actor() if callable(actor) else actor
        entry = self._entry(action, name, None, None, "denied", message, {"source": source})
        with self._wake:
            if len(self._pending) >= MAX_PENDING:  # the disk is behind: count, never block
                self.limiter.count(source)
                metrics.audit_suppressed(1)
                return False
            self._pending.append(entry)
            self._start_writer()
            self._wake.notify()
        return True

    def _start_writer(self) -> None:
        if self._writer is None or not self._writer.is_alive():
            if self._writer is None:
                atexit.register(self.flush, 2.0)
            self._writer = threading.Thread(
                target=self._write_loop, name="audit-writer", daemon=True
            )
            self._writer.start()

    def _write_loop(self) -> None:
        next_summary = time.monotonic() + SUMMARY_S
        while True:
            with self._wake:
                self._wake.wait_for(
                    lambda: bool(self._pending), max(0.0, next_summary - time.monotonic())
                )
                self._wake.wait_for(lambda: not self._writing)  # record() is appending: after it
                lines, self._writing = list(self._pending), True
                self._pending.clear()
            try:
                if time.monotonic() >= next_summary:
                    next_summary = time.monotonic() + SUMMARY_S
                    lines += self._summaries()
                self._write_all(lines)
            finally:
                with self._wake:
                    self._writing = False
                    self._wake.notify_all()

    def _summaries(self) -> list[dict[str, Any]]:
        rate = self.limiter.per_s
        return [
            self._entry(
                "refusals suppressed",
                "-",
                None,
                None,
                "denied",
                f"{n} more refused calls from this source not written (over {rate:g} a second)",
                {"source": source, "suppressed": n},
            )
            for source, n in self.limiter.suppressed(time.monotonic())
        ]

    def _write_all(self, entries: list[dict[str, Any]]) -> None:
        if not entries:
            return
        try:
            self._file.write(b"".join(_line(e) for e in entries), durable=False)
        except OSError as exc:  # refusing must not depend on the disk; the replica log says so
            log.warning(
                "audit log %s: could not append %d refusal lines: %s", self.path, len(entries), exc
            )

    def flush(self, timeout_s: float = 5.0) -> bool:
        """Write the pending refusal lines and the suppressed counts now (tests, shutdown)."""
        deadline = time.monotonic() + timeout_s
        with self._wake:
            if not self._wake.wait_for(lambda: not self._pending and not self._writing, timeout_s):
                return False
            # the writer thread takes the counts only while it writes: hold it off, so no count
            # taken now is still on its way to the file when this returns
            self._writing = True
        try:
            self._write_all(self._summaries())
        finally:
            with self._wake:
                self._writing = False
                self._wake.notify_all()
        return time.monotonic() <= deadline

    @contextlib.asynccontextmanager
    async def action(
        self,
        action: str,
        *,
        actor: str,
        model: str | None = None,
        version: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> AsyncIterator[dict[str, Any]]:
        """Run an admin action inside; append ``ok``, or ``error`` with the mapped status and
        message, then re-raise. The body may fill ``entry["model"|"version"|"details"]``.
        The write runs in a thread: an fsync must not stall the replica's event loop."""
        entry: dict[str, Any] = {"model": model, "version": version, "details": dict(details or {})}
        try:
            yield entry
        except BaseException as exc:
            if isinstance(exc, asyncio.CancelledError):
                message = "cancelled (the caller went away): the action may be incomplete"
            else:
                status, body = status_and_body(exc)
                message = f"{status} {body['error']['type']}: {body['error']['message']}"
            await self._safe_record(action, actor, entry, "error", message)
            raise
        await self._safe_record(action, actor, entry, "ok", "")

    async def _safe_record(
        self, action: str, actor: str, entry: dict[str, Any], result: Result, message: str
    ) -> None:
        try:
            await asyncio.shield(
                asyncio.to_thread(
                    self.record,
                    action,
                    actor=actor,
                    model=entry.get("model"),
                    version=entry.get("version"),
                    result=result,
                    message=message,
                    details=entry.get("details"),
                )
            )
        except Exception:  # the action itself is done: say the audit write failed, do not undo it
            log.exception("audit log %s: could not append %s by %s", self.path, action, actor)

    def read(self) -> Iterator[dict[str, Any]]:
        """Every entry, oldest first (rotated files, then the current one); a torn line (a
        crash mid-write) is skipped."""
        for path in reversed(self._file.files()):
            try:
                f = path.open("rb")
            except FileNotFoundError:
                continue
            with f:
                for raw in f:
                    try:
                        entry = json.loads(raw)
                    except ValueError:
                        continue
                    if isinstance(entry, dict):
                        yield entry


def _line(entry: dict[str, Any]) -> bytes:
    return (json.dumps(entry, separators=(",", ":"), default=str) + "\n").encode()


_LOGS: dict[Path, AuditLog] = {}
_LOGS_LOCK = threading.Lock()


def audit_log(settings: Settings) -> AuditLog:
    """The process's ``AuditLog`` for ``settings.auth.audit_log`` (one lock per file)."""
    path = settings.auth.audit_log
    assert path is not None  # resolved by Settings
    with _LOGS_LOCK:
        found = _LOGS.get(path)
        if found is None:
            auth = settings.auth
            found = _LOGS[path] = AuditLog(
                path, auth.audit_rotation, auth.refused_log_per_s, auth.refused_log_sources
            )
        return found


def record(
    settings: Settings,
    action: str,
    *,
    actor: str,
    model: str | None = None,
    version: str | None = None,
    result: Result = "ok",
    message: str = "",
    details: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Append one admin action, fsync'd (blocking: from async code prefer ``action``)."""
    return audit_log(settings).record(
        action,
        actor=actor,
        model=model,
        version=version,
        result=result,
        message=message,
        details=details,
    )


def action(
    settings: Settings,
    action: str,
    *,
    actor: str,
    model: str | None = None,
    version: str | None = None,
    details: dict[str, Any] | None = None,
) -> contextlib.AbstractAsyncContextManager[dict[str, Any]]:
    """``async with audit.action(settings, "repository.unload", actor=..., model=...) as entry:``"""
    return audit_log(settings).action(
        action, actor=actor, model=model, version=version, details=details
    )
