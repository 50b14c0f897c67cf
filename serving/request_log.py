"""The request log: one structured JSON line per HTTP request, and what goes in it.

When the log is on (``configure``), ``serving.middleware.request_log.RequestLog`` writes
one JSON line per request: time, request id, method, route (the template, as in the
metrics), status, latency, and what the dataplane noted (customers, model versions, the
v2 model). Never the body, feature values, headers or tokens. When it is off nothing is
collected or formatted.

The line is written straight to its stream, not through ``logging``: a record, its
handlers and Ray's record factory (installed in every Ray worker) are a visible share of
a one-customer request's CPU in a Serve replica (docs/benchmarks.md), for a line whose
shape never changes.

The dataplane notes its fields through :func:`note` (a context variable, so neither
the dataplane nor the components see HTTP).
"""

from __future__ import annotations

import contextvars
import sys
import time
from typing import Any

import orjson

_stream: Any = None  # where lines go while the log is on (None: off)
_last: Any = None  # the stream last given, kept while the log is off
_fields: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "reengage_request", default=None
)


def note(**fields: Any) -> None:
    """Add fields to the current request's log line (no-op outside a logged request)."""
    current = _fields.get()
    if current is not None:
        current.update(fields)


def collect() -> tuple[dict[str, Any], contextvars.Token[dict[str, Any] | None]]:
    """Start collecting the current request's noted fields; ``release`` the token after."""
    fields: dict[str, Any] = {}
    return fields, _fields.set(fields)


def release(token: contextvars.Token[dict[str, Any] | None]) -> None:
    _fields.reset(token)


def configure(enabled: bool = True, stream: Any = None) -> None:
    """Turn the request log on or off; ``stream`` (any text stream) is where lines go.

    A Serve replica passes its own file in Serve's log directory
    (``serving.deployments.ingress``). Without one, the stream set before, else the
    process's own stderr (``sys.__stderr__``), not ``sys.stderr``: inside a Serve replica
    that is Ray's redirect into the replica logger at INFO, which ``server.log_level``
    (WARNING) drops.
    """
    global _stream, _last
    if stream is not None:
        _last = stream
    _stream = (_last or sys.__stderr__ or sys.stderr) if enabled else None


def enabled() -> bool:
    return _stream is not None


def write(fields: dict[str, Any]) -> None:
    """One JSON line: ``ts``, ``level``, ``msg``, then ``fields``."""
    stream = _stream
    if stream is not None:
        doc = {"ts": round(time.time(), 6), "level": "INFO", "msg": "request", **fields}
        stream.write(orjson.dumps(doc, default=str, option=orjson.OPT_APPEND_NEWLINE).decode())
        stream.flush()
