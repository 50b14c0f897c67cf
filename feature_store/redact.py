"""The one redaction of credentials in URLs, DSNs and any text built from them.

Every string made from settings (an error's message, a log line, the CLI's output, a
metric label, an audit record, a settings dump) goes through :func:`redact` first, so a
password in ``redis://:pw@host:6379/0`` or in Feast's ``host:6379,db=0,password=pw``
never reaches an answer or a file. It lives in ``feature_store`` because the feature
store builds such strings too and never imports ``serving``; ``serving`` imports it.
"""

from __future__ import annotations

import re
from typing import Any

MASK = "***"

# scheme://userinfo@  (userinfo: anything up to the last '@' before the host, no '/' or space)
_URL_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*://)(?P<userinfo>[^/\s@'\"]+)@")
# key=value credentials in DSNs and connection strings: password=..., ?password=..., token=...
_KEY_VALUE = re.compile(
    r"(?P<key>\b(?:password|passwd|pwd|token|secret|access_token|api_key|apikey)\s*=\s*)"
    r"(?P<value>[^,;&\s'\"]+)",
    re.IGNORECASE,
)
# HTTP Authorization values that end up in text (a client's header echoed in an error)
_BEARER = re.compile(r"(?P<key>\bBearer\s+)(?P<value>[A-Za-z0-9._~+/=\-]+)", re.IGNORECASE)


def redact(text: Any) -> str:
    """``text`` with every credential masked: ``redis://:pw@h:6379/0`` -> ``redis://***@h:6379/0``,
    ``password=pw`` -> ``password=***``, ``Bearer abc`` -> ``Bearer ***``. Idempotent."""
    out = str(text)
    if "@" in out:
        out = _URL_USERINFO.sub(lambda m: m["scheme"] + MASK + "@", out)
    if "=" in out:
        out = _KEY_VALUE.sub(lambda m: m["key"] + MASK, out)
    if "earer" in out:
        out = _BEARER.sub(lambda m: m["key"] + MASK, out)
    return out


def redact_url(url: str | None) -> str:
    """A URL or DSN fit to show: its credentials masked (None and '' stay empty)."""
    return redact(url) if url else ""


def redact_mapping(value: Any) -> Any:
    """A settings dump (nested dicts and lists) with every string redacted and every value
    of a secret-named key (``password``, ``token``...) masked whole."""
    if isinstance(value, dict):
        return {
            k: (MASK if _secret_key(k) and v not in (None, "") else redact_mapping(v))
            for k, v in value.items()
        }
    if isinstance(value, (list, tuple)):
        return [redact_mapping(v) for v in value]
    return redact(value) if isinstance(value, str) else value


def _secret_key(key: Any) -> bool:
    k = str(key).lower()
    return any(word in k for word in ("password", "passwd", "secret", "api_key")) or k in (
        "token",
        "tokens",
    )


def install_log_redaction() -> None:
    """Redact every log record this process makes, whoever logs it (ours, Ray, Feast,
    redis-py): a record factory wrapping the current one (Ray installs its own in every
    worker) renders the message and any traceback once, redacted. Idempotent."""
    import logging

    current = logging.getLogRecordFactory()
    if getattr(current, "_reengage_redacts", False):
        return

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = current(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: let the handler report it as logging does
            return record
        record.msg, record.args = redact(message), ()
        if record.exc_info and record.exc_info[0] is not None:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        return record

    factory._reengage_redacts = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)
