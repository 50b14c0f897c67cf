"""Bearer tokens: made, stored as hashes, checked in constant time, found by clients.

A token is ``rng_`` plus 32 random bytes (URL-safe base64). The server keeps only its
SHA-256: in the settings (``auth.tokens``, e.g. serve.yaml) or in the token file
``reengage token`` manages (``<data_dir>/auth/tokens.json``, mode 0600; replicas pick
up changes within ``auth.reload_interval_s``). A random 256-bit token needs no salt or
slow hash: the hash only keeps the stored form from being usable as a token.

A first start writes an admin token (every role) to ``auth.admin_token_file``
(``<data_dir>/auth/admin.token``, 0600), the one place the token's text is kept, so
that the CLI, the demo and the tests on this machine can read it. ``REENGAGE_TOKEN``
overrides it for clients.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import hmac
import json
import logging
import os
import secrets
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from serving.errors import PermissionDenied, Unauthenticated
from serving.security.groups import GROUPS
from serving.settings import AuthSettings

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
        raise Unauthenticated("send the token as 'Authorization: Bearer <token>'", field="authorization")
    return token.strip()


class TokenFile:
    """``{"tokens": [{"name", "sha256", "roles", "created"}]}``, mode 0600, replaced atomically
    under an exclusive lock (several processes may write it)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def read(self) -> list[dict[str, Any]]:
        try:
            doc = json.loads(self.path.read_text())
        except FileNotFoundError:
            return []
        tokens = doc.get("tokens", []) if isinstance(doc, dict) else None
        if not isinstance(tokens, list):
            raise ValueError(f"{self.path}: expected {{'tokens': [...]}}")
        return tokens

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.path.with_name(self.path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the lock

    def put(self, name: str, sha256: str, roles: Iterable[str]) -> None:
        """Add ``name`` or replace its token (rotation). Call inside ``locked()``."""
        entry = {"name": name, "sha256": sha256, "roles": sorted(set(roles), key=GROUPS.index),
                 "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        self._write([t for t in self.read() if t.get("name") != name] + [entry])

    def remove(self, name: str) -> bool:
        """Call inside ``locked()``."""
        tokens = self.read()
        kept = [t for t in tokens if t.get("name") != name]
        if len(kept) != len(tokens):
            self._write(kept)
        return len(kept) != len(tokens)

    def _write(self, tokens: list[dict[str, Any]]) -> None:
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump({"tokens": tokens}, f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
        _fsync_dir(self.path.parent)


class TokenStore:
    """The tokens this server accepts: from the settings, and from the token file (re-read
    when it changes, checked at most every ``reload_interval_s``)."""

    def __init__(self, auth: AuthSettings, clock: Any = time.monotonic) -> None:
        assert auth.token_file is not None  # resolved by Settings
        self.file = TokenFile(auth.token_file)
        self.interval = auth.reload_interval_s
        self._clock = clock
        self._configured = [(t.sha256.encode(), Principal(t.name, frozenset(t.roles))) for t in auth.tokens]
        self._entries = list(self._configured)
        self._stamp: tuple[int, int, int] | None = None
        self._checked = float("-inf")
        self._reload()

    def identify(self, token: str) -> Principal | None:
        now = self._clock()
        if now - self._checked >= self.interval:
            self._checked = now
            self._reload()
        digest = hash_token(token).encode()
        found: Principal | None = None
        for known, principal in self._entries:  # every entry compared: no early exit
            if hmac.compare_digest(digest, known) and found is None:
                found = principal
        return found

    def _reload(self) -> None:
        try:
            st = self.file.path.stat()
            stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
        except FileNotFoundError:
            stamp = None
        if stamp == self._stamp:
            return
        try:
            loaded = [(str(t["sha256"]).encode(), Principal(str(t["name"]), frozenset(t["roles"])))
                      for t in self.file.read()]
        except (OSError, ValueError, KeyError, TypeError) as exc:  # keep the tokens we had
            log.warning("token file %s unreadable, keeping the previous tokens: %s", self.file.path,
                        type(exc).__name__)
            return
        self._stamp = stamp
        self._entries = self._configured + loaded


class Authenticator:
    """The check both transports run: which groups are protected, and who a token is."""

    def __init__(self, auth: AuthSettings, store: TokenStore | None = None) -> None:
        self.protected = frozenset(g for g in GROUPS if getattr(auth.groups, g) == "token")
        self.store = store or TokenStore(auth)

    def check(self, group: str, authorization: str | bytes | None) -> Principal:
        """The caller of a protected ``group``; ``Unauthenticated`` (401) without a known
        token, ``PermissionDenied`` (403) when the token lacks the group's role."""
        token = bearer(authorization)
        if token is None:
            raise Unauthenticated(f"the {group} routes need a token: send 'Authorization: Bearer <token>'",
                                  field="authorization")
        principal = self.store.identify(token)
        if principal is None:
            raise Unauthenticated("unknown or revoked token", field="authorization")
        if group not in principal.roles:
            raise PermissionDenied(f"token '{principal.name}' lacks the '{group}' role "
                                   f"(it has {sorted(principal.roles, key=GROUPS.index)})", field="authorization")
        return principal

    def identify(self, authorization: str | bytes | None) -> Principal | None:
        """Who a token belongs to, without refusing (names the actor on an open admin group)."""
        try:
            token = bearer(authorization)
        except Unauthenticated:
            return None
        return None if token is None else self.store.identify(token)


def ensure_admin_token(auth: AuthSettings) -> tuple[Path, bool]:
    """Write the bootstrap admin token unless there is one already, the bootstrap is off,
    or the settings configure an admin token; returns (its path, whether it was created)."""
    path = auth.admin_token_file
    assert path is not None and auth.token_file is not None  # resolved by Settings
    if not auth.bootstrap_admin or path.exists() or any(ADMIN in t.roles for t in auth.tokens):
        return path, False
    file = TokenFile(auth.token_file)
    with file.locked():
        if path.exists():  # another process won the race
            return path, False
        token = new_token()
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(token + "\n")
            f.flush()
            os.fsync(f.fileno())
        file.put(ADMIN, hash_token(token), GROUPS)
    log.info("created the admin token at %s", path)
    return path, True


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


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
