"""The audit log: every admin action, one JSON line each, appended and fsync'd.

``<data_dir>/audit.jsonl`` by default (``auth.audit_log``), mode 0600. Each line::

    {"time": "2026-11-30T19:40:01.123Z", "ts": 1795808401.123, "actor": "admin",
     "action": "repository.unload", "model": "churn", "version": null,
     "result": "ok" | "error" | "denied", "message": "...", "details": {...}, "pid": 4242}

Every replica appends to the same file: one ``write`` of one line to a descriptor opened
with ``O_APPEND`` (lines do not interleave), then ``fsync`` before the call returns.
Refused admin calls (401/403) are appended too, without the fsync (a flood of them must
not turn into a flood of disk flushes). ``reengage audit`` reads it.

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
import contextlib
import json
import logging
import os
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any, Literal

from feature_store.redact import redact, redact_mapping
from serving.errors import status_and_body
from serving.settings import Settings

log = logging.getLogger("reengage")

Result = Literal["ok", "error", "denied"]
RESULTS: tuple[str, ...] = ("ok", "error", "denied")


class AuditLog:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def record(self, action: str, *, actor: str, model: str | None = None, version: str | None = None,
               result: Result = "ok", message: str = "", details: dict[str, Any] | None = None,
               durable: bool = True) -> dict[str, Any]:
        """Append one entry (fsync'd unless ``durable`` is false) and return it."""
        if result not in RESULTS:
            raise ValueError(f"result must be one of {RESULTS}, got {result!r}")
        now = time.time()
        entry = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now * 1000) % 1000:03d}Z",
            "ts": round(now, 3), "actor": actor, "action": action,
            "model": model, "version": None if version is None else str(version),
            "result": result, "message": redact(message), "details": redact_mapping(details or {}), "pid": os.getpid(),
        }
        line = (json.dumps(entry, separators=(",", ":"), default=str) + "\n").encode()
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, line)
                if durable:
                    os.fsync(fd)
            finally:
                os.close(fd)
        return entry

    @contextlib.asynccontextmanager
    async def action(self, action: str, *, actor: str, model: str | None = None, version: str | None = None,
                     details: dict[str, Any] | None = None) -> AsyncIterator[dict[str, Any]]:
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

    async def _safe_record(self, action: str, actor: str, entry: dict[str, Any], result: Result, message: str) -> None:
        try:
            await asyncio.shield(asyncio.to_thread(
                self.record, action, actor=actor, model=entry.get("model"), version=entry.get("version"),
                result=result, message=message, details=entry.get("details")))
        except Exception:  # the action itself is done: say the audit write failed, do not undo it
            log.exception("audit log %s: could not append %s by %s", self.path, action, actor)

    def read(self) -> Iterator[dict[str, Any]]:
        """Every entry, oldest first; a torn last line (a crash mid-write) is skipped."""
        try:
            f = self.path.open("rb")
        except FileNotFoundError:
            return
        with f:
            for raw in f:
                try:
                    entry = json.loads(raw)
                except ValueError:
                    continue
                if isinstance(entry, dict):
                    yield entry


_LOGS: dict[Path, AuditLog] = {}
_LOGS_LOCK = threading.Lock()


def audit_log(settings: Settings) -> AuditLog:
    """The process's ``AuditLog`` for ``settings.auth.audit_log`` (one lock per file)."""
    path = settings.auth.audit_log
    assert path is not None  # resolved by Settings
    with _LOGS_LOCK:
        found = _LOGS.get(path)
        if found is None:
            found = _LOGS[path] = AuditLog(path)
        return found


def record(settings: Settings, action: str, *, actor: str, model: str | None = None, version: str | None = None,
           result: Result = "ok", message: str = "", details: dict[str, Any] | None = None) -> dict[str, Any]:
    """Append one admin action, fsync'd (blocking: from async code prefer ``action``)."""
    return audit_log(settings).record(action, actor=actor, model=model, version=version, result=result,
                                      message=message, details=details)


def action(settings: Settings, action: str, *, actor: str, model: str | None = None, version: str | None = None,
           details: dict[str, Any] | None = None) -> contextlib.AbstractAsyncContextManager[dict[str, Any]]:
    """``async with audit.action(settings, "repository.unload", actor=..., model=...) as entry:``"""
    return audit_log(settings).action(action, actor=actor, model=model, version=version, details=details)
