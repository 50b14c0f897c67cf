"""Bearer tokens: made, kept as hashes, checked in constant time, found by clients.

A token is ``rng_`` plus 32 random bytes (URL-safe base64). The server keeps only its
SHA-256: in the settings (``auth.tokens``: serve.yaml, or ``REENGAGE_AUTH__TOKENS`` from a
Kubernetes Secret) or in the shared state (``reengage token``; ``shared_tokens.py``), the
store every replica on every node reads, so a created or revoked token reaches them all
within ``auth.reload_interval_s``. A random 256-bit token needs no salt or slow hash: the
hash only keeps the stored form from being usable as a token.

``REENGAGE_TOKEN`` gives clients their token; on the machine of a first start, the
bootstrap admin token's file does (``shared_tokens.ensure_admin_token``).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from serving.errors import Unauthenticated
from serving.settings import AuthSettings, AuthToken
from serving.shared_state import Watched

log = logging.getLogger("reengage")

TOKEN_PREFIX = "rng_"
TOKEN_ENV = "REENGAGE_TOKEN"
ANONYMOUS = "anonymous"
ADMIN = "admin"


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class Principal:
    """Who called: the token's name and the groups it may call."""

    name: str
    roles: frozenset[str]


def actor_of(scope: Mapping[str, Any]) -> str:
    """The token name the HTTP check put in the ASGI scope (``scope["auth"]``), else anonymous."""
    principal = scope.get("auth")
    return principal.name if isinstance(principal, Principal) else ANONYMOUS


def bearer(authorization: str | bytes | None) -> str | None:
    """The token in an ``Authorization: Bearer <token>`` value, None when absent."""
    if not authorization:
        return None
    if isinstance(authorization, bytes):
        authorization = authorization.decode("latin-1")
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated(
            "send the token as 'Authorization: Bearer <token>'", field="authorization"
        )
    return token.strip()


class TokenStore:
    """The tokens this replica accepts, as (hash, who) pairs held in memory.

    Two sources: the settings (``auth.tokens``: serve.yaml, or ``REENGAGE_AUTH__TOKENS`` from
    a Kubernetes Secret) and the shared state's ``tokens`` namespace (``reengage token``),
    whose in-memory copy a thread refreshes (``Watched``). ``identify`` reads only memory: no
    store call on the request path. A revoked entry (``{"sha256", "revoked"}``) also refuses
    a settings token of that name and hash, so a Secret's token can be revoked at once.
    """

    def __init__(self, configured: Iterable[AuthToken], watched: Watched | None = None) -> None:
        self._configured = [
            (t.name, t.sha256, Principal(t.name, frozenset(t.roles))) for t in configured
        ]
        self._entries = [(sha.encode(), who) for _, sha, who in self._configured]
        self._lock = threading.Lock()
        self.watched = watched
        if watched is not None:
            watched.on_change(lambda _: self._rebuild())
            self._rebuild()

    def identify(self, token: str) -> Principal | None:
        digest = hash_token(token).encode()
        found: Principal | None = None
        for known, principal in self._entries:  # every entry compared: no early exit
            if hmac.compare_digest(digest, known) and found is None:
                found = principal
        return found

    def _rebuild(self) -> None:
        """New entries from the watched copy's latest snapshot (under a lock, so a slower
        rebuild never installs an older snapshot over a newer one)."""
        assert self.watched is not None
        with self._lock:
            docs = self.watched.snapshot
            revoked = {(name, str(d.get("sha256"))) for name, d in docs.items() if d.get("revoked")}
            entries = [
                (sha.encode(), who)
                for name, sha, who in self._configured
                if (name, sha) not in revoked
            ]
            for name, doc in docs.items():
                if doc.get("revoked") or not isinstance(doc.get("sha256"), str):
                    continue
                entries.append(
                    (doc["sha256"].encode(), Principal(name, frozenset(doc.get("roles", ()))))
                )
            self._entries = entries


def client_token(auth: AuthSettings | None = None) -> str | None:
    """The token a client on this machine sends: ``REENGAGE_TOKEN``, else the admin token file."""
    env = os.environ.get(TOKEN_ENV, "").strip()
    if env:
        return env
    if auth is None or auth.admin_token_file is None:
        return None
    try:
        return auth.admin_token_file.read_text().strip() or None
    except OSError:
        return None


def bearer_headers(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}
