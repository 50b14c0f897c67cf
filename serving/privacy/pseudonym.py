"""Keyed pseudonyms of customer ids: what every log holds instead of the id.

The pseudonym is SipHash-2-4 under a 128-bit secret key (``feature_store.pseudonym``):
a keyed pseudo-random function computed with numpy over a whole batch, where
HMAC-SHA256 would cost a C call per id.

The key is ``privacy.pseudonym_key`` when set, else the file ``privacy.key_file``
(``<data_dir>/privacy/pseudonym.key``, 0600), written on first use like the admin token.
It never appears in an answer or a log. Losing it makes old pseudonyms unlinkable to new
ones (evidence and OPE start over); erasing it is how every log becomes anonymous at once.
"""

from __future__ import annotations

import functools
import os
import secrets
from pathlib import Path
from typing import Any

from feature_store.pseudonym import pseudonym_hex, pseudonyms

KEY_BYTES = 16


def pseudonym_key(privacy: Any) -> bytes:
    """The key of a ``PrivacySettings``: the configured secret (hex), else the key file,
    created (exclusively, 0600) when missing so every replica of a machine reads one key."""
    configured = privacy.pseudonym_key
    if configured is not None:
        return _parse(configured.get_secret_value(), "privacy.pseudonym_key")
    return _key_file(Path(privacy.key_file))


KEY_ENV = "REENGAGE_PRIVACY__PSEUDONYM_KEY"


def key_source(privacy: Any) -> str:
    """Where the key is, for the suppression export: ``env:NAME`` or the key file's path
    (the file is created here if missing). Never the key."""
    if privacy.pseudonym_key is not None:
        return "env:" + KEY_ENV
    _key_file(Path(privacy.key_file))
    return str(privacy.key_file)


@functools.lru_cache(maxsize=4)
def _key_file(path: Path) -> bytes:
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _parse(path.read_text().strip(), str(path))
    with os.fdopen(fd, "w") as f:
        f.write(secrets.token_hex(KEY_BYTES) + "\n")
        f.flush()
        os.fsync(f.fileno())
    return _parse(path.read_text().strip(), str(path))


def _parse(text: str, where: str) -> bytes:
    try:
        key = bytes.fromhex(text)
    except ValueError:
        raise ValueError(f"{where} must be {2 * KEY_BYTES} hex digits") from None
    if len(key) != KEY_BYTES:
        raise ValueError(f"{where} must be {2 * KEY_BYTES} hex digits, not {2 * len(key)}")
    return key


__all__ = ["KEY_BYTES", "KEY_ENV", "key_source", "pseudonym_hex", "pseudonym_key", "pseudonyms"]
