"""Tokens in the shared state: the one list every replica on every node reads.

The ``tokens`` namespace holds one document per token name: ``{"sha256", "roles",
"created"}`` while it is valid, ``{"sha256", "revoked"}`` once revoked. A revoked entry is
kept (never deleted) so that its hash stays refused, also when the same name and hash come
from the settings (a Kubernetes Secret), and so that a bootstrap never re-registers it.

Writers are ``reengage token`` (``TokenBook``) and the first start (``ensure_admin_token``);
readers are the replicas' ``TokenStore``, one per process over one ``Watched`` copy that a
thread refreshes every ``auth.reload_interval_s`` (one generation read when nothing moved).
The state is sqlite in the data dir (one machine) or Redis (the one state switch), so the
same holds in every ``server.artifacts`` mode: nothing about tokens ships with the app.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from serving.errors import DependencyUnavailable, PermissionDenied, Unauthenticated
from serving.security.groups import GROUPS
from serving.security.tokens import ADMIN, Principal, TokenStore, bearer, hash_token, new_token
from serving.settings import AuthToken, Settings
from serving.shared_state import SharedState, Watched, open_shared_state

log = logging.getLogger("reengage")

NS = "tokens"

_watches: dict[tuple[str, ...], Watched] = {}
_watches_lock = threading.Lock()


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _where(settings: Settings) -> tuple[str, ...]:
    """Which shared state ``settings`` open: one watch per store per process."""
    b = settings.bandit
    return ("redis", b.redis_url) if b.backend == "redis" else ("sqlite", str(settings.data_dir))


def watch_tokens(settings: Settings) -> Watched:
    """This process's refreshed copy of the token namespace (started once, then shared by
    the HTTP and gRPC checks of every app in the process), brought up to date now. A store
    that is down leaves the copy as it was (settings tokens still work) and the thread keeps
    trying."""
    key = _where(settings)
    with _watches_lock:
        watched = _watches.get(key)
        if watched is None:
            watched = _watches[key] = Watched(open_shared_state(settings), NS)
            fresh = True
        else:
            fresh = False
    try:
        watched.refresh()
    except DependencyUnavailable as exc:
        log.warning(
            "tokens: %s; only the settings' tokens are accepted until it answers", exc.message
        )
    if fresh:
        watched.start(settings.auth.reload_interval_s)
    return watched


def stop_watches() -> None:
    """Stop and forget every watch of this process (tests: one data dir each)."""
    with _watches_lock:
        for watched in _watches.values():
            watched.stop()
            watched.store.close()
        _watches.clear()


def token_store(settings: Settings) -> TokenStore:
    return TokenStore(settings.auth.tokens, watch_tokens(settings))


class TokenBook:
    """Create, revoke and list tokens in the shared state (the CLI's side)."""

    def __init__(self, state: SharedState, configured: Iterable[AuthToken] = ()) -> None:
        self.state = state
        self.configured = {t.name: t for t in configured}

    def create(self, name: str, roles: Iterable[str]) -> str:
        """A new token for ``name`` (replacing its previous one: rotation); returns its text,
        which is stored nowhere."""
        token = new_token()
        self.put(name, hash_token(token), roles)
        return token

    def put(self, name: str, sha256: str, roles: Iterable[str]) -> None:
        if name in self.configured:
            raise ValueError(
                f"token {name!r} comes from the settings (auth.tokens): rotate it there, "
                "or choose another name"
            )
        self.state.put(
            NS,
            name,
            {"sha256": sha256, "roles": sorted(set(roles), key=GROUPS.index), "created": _now()},
        )

    def revoke(self, name: str) -> bool:
        """Refuse ``name``'s token on every replica; False when there is no valid one."""
        doc = self.state.get(NS, name)
        if doc is not None and not doc.get("revoked"):
            sha = doc["sha256"]
        elif name in self.configured and (
            doc is None or doc.get("sha256") != self.configured[name].sha256
        ):
            sha = self.configured[name].sha256
        else:
            return False
        self.state.put(NS, name, {"sha256": sha, "revoked": _now()})
        return True

    def rows(self) -> list[dict[str, Any]]:
        """name, roles, created, source, state: never a hash."""
        docs = self.state.items(NS)
        out = [
            {
                "name": n,
                "roles": d.get("roles", []),
                "created": d.get("created", ""),
                "source": "shared state",
                "state": f"revoked {d['revoked']}" if d.get("revoked") else "valid",
            }
            for n, d in sorted(docs.items())
            if n not in self.configured
        ]
        for t in self.configured.values():
            revoked = docs.get(t.name, {})
            dead = revoked.get("revoked") and revoked.get("sha256") == t.sha256
            out.append(
                {
                    "name": t.name,
                    "roles": list(t.roles),
                    "created": "",
                    "source": "settings (auth.tokens)",
                    "state": f"revoked {revoked['revoked']}" if dead else "valid",
                }
            )
        return out


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive lock beside ``path``: processes of one machine start at once."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path.with_name(path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def ensure_admin_token(settings: Settings) -> tuple[Path, bool]:
    """Write the bootstrap admin token unless the bootstrap is off, the settings configure an
    admin token, or the shared state holds an ``admin`` entry; returns (its file, whether it
    was created). The file (0600) is the one place the token's text is kept; a file whose
    hash the shared state lacks (a new Redis, a changed state switch) is registered again."""
    auth = settings.auth
    path = auth.admin_token_file
    assert path is not None  # resolved by Settings
    if not auth.bootstrap_admin or any(ADMIN in t.roles for t in auth.tokens):
        return path, False
    state = open_shared_state(settings)
    try:
        with _locked(path):
            import_token_file(settings, state)
            known = state.get(NS, ADMIN)
            if path.exists():
                if known is None:
                    TokenBook(state).put(ADMIN, hash_token(path.read_text().strip()), GROUPS)
                    log.info("registered the admin token of %s in the %s", path, state.name)
                return path, False
            if known is not None:  # made on another machine, or revoked: never replaced here
                return path, False
            token = new_token()
            _write_secret(path, token)
            TokenBook(state).put(ADMIN, hash_token(token), GROUPS)
    finally:
        state.close()
    log.info("created the admin token at %s", path)
    return path, True


def import_token_file(settings: Settings, state: SharedState) -> int:
    """Hashes from an older version's token file (``auth.token_file``) into the shared
    state, once: names already there are left alone; the file is then renamed
    ``*.imported``. Returns how many were imported."""
    file = settings.auth.token_file
    if file is None or not file.is_file():
        return 0
    try:
        doc = json.loads(file.read_text())
        entries = [
            (
                str(t["name"]),
                {
                    "sha256": str(t["sha256"]),
                    "roles": list(t["roles"]),
                    "created": t.get("created", _now()),
                },
            )
            for t in doc["tokens"]
        ]
    except (OSError, ValueError, KeyError, TypeError) as exc:  # left in place for the operator
        log.warning("token file %s unreadable, not imported: %s", file, type(exc).__name__)
        return 0
    n = 0
    for name, entry in entries:
        if state.get(NS, name) is None:
            state.put(NS, name, entry)
            n += 1
    file.replace(file.with_name(file.name + ".imported"))
    log.info("imported %d token(s) of %s into the %s", n, file, state.name)
    return n


def _write_secret(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text + "\n")
        f.flush()
        os.fsync(f.fileno())


class Authenticator:
    """The check both transports run: which groups are protected, and who a token is."""

    def __init__(self, settings: Settings, store: TokenStore | None = None) -> None:
        auth = settings.auth
        self.protected = frozenset(g for g in GROUPS if getattr(auth.groups, g) == "token")
        self.store = store if store is not None else token_store(settings)

    def check(self, group: str, authorization: str | bytes | None) -> Principal:
        """The caller of a protected ``group``; ``Unauthenticated`` (401) without a known
        token, ``PermissionDenied`` (403) when the token lacks the group's role."""
        token = bearer(authorization)
        if token is None:
            raise Unauthenticated(
                f"the {group} routes need a token: send 'Authorization: Bearer <token>'",
                field="authorization",
            )
        principal = self.store.identify(token)
        if principal is None:
            raise Unauthenticated("unknown or revoked token", field="authorization")
        if group not in principal.roles:
            raise PermissionDenied(
                f"token '{principal.name}' lacks the '{group}' role "
                f"(it has {sorted(principal.roles, key=GROUPS.index)})",
                field="authorization",
            )
        return principal

    def identify(self, authorization: str | bytes | None) -> Principal | None:
        """Who a token belongs to, without refusing (names the actor on an open admin group)."""
        try:
            token = bearer(authorization)
        except Unauthenticated:
            return None
        return None if token is None else self.store.identify(token)
