"""Tokens every replica shares: two handles on one store are two replicas (sqlite in one
data dir, or a real Redis). A token created or revoked through a third handle (the CLI)
is accepted or refused by both within 1 s, and the check itself never reads the store."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from serving.security import TokenBook, TokenStore, hash_token
from serving.security.shared_tokens import NS
from serving.settings import AuthToken, load_settings
from serving.shared_state import (
    RedisSharedState,
    SharedState,
    SqliteSharedState,
    Watched,
    redis_location,
)

INTERVAL_S = load_settings({}).auth.reload_interval_s  # the shipped default


@pytest.fixture(params=["sqlite", "redis"])
def handles(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], SharedState]]:
    """A factory of independent handles on one store."""
    made: list[SharedState] = []
    if request.param == "sqlite":

        def make() -> SharedState:
            made.append(SqliteSharedState(tmp_path / "state" / "shared.sqlite"))
            return made[-1]
    else:
        url = request.getfixturevalue("redis_url")

        def make() -> SharedState:
            made.append(RedisSharedState(url, where=redis_location(url)))
            return made[-1]

    yield make
    for s in made:
        s.close()


def _replica(state: SharedState, configured: list[AuthToken] | None = None) -> TokenStore:
    """A replica's token check, as ``watch_tokens`` makes it: one load, then the thread."""
    watched = Watched(state, NS)
    watched.refresh()
    return TokenStore(configured or [], watched.start(INTERVAL_S))


def _within(predicate: Callable[[], bool], limit_s: float) -> float:
    """Seconds until ``predicate`` holds; fails past ``limit_s``."""
    start = time.monotonic()
    while not predicate():
        assert time.monotonic() - start < limit_s, f"not within {limit_s} s"
        time.sleep(0.01)
    return time.monotonic() - start


def _stop(*replicas: TokenStore) -> None:
    for r in replicas:
        assert r.watched is not None
        r.watched.stop()


def test_create_and_revoke_reach_every_replica_within_a_second(
    handles: Callable[[], SharedState],
) -> None:
    a, b = _replica(handles()), _replica(handles())
    book = TokenBook(handles())
    try:
        token = book.create("crm", ["feedback"])
        took = _within(lambda: all(r.identify(token) is not None for r in (a, b)), 1.0)
        assert a.identify(token).roles == frozenset({"feedback"}), took
        book.create("ops", ["admin"])  # another write: crm stays valid
        assert book.revoke("crm")
        _within(lambda: all(r.identify(token) is None for r in (a, b)), 1.0)
        assert all(r.watched.snapshot["ops"]["roles"] == ["admin"] for r in (a, b))
        rotated = book.create(
            "crm", ["feedback"]
        )  # the name again, a new token: the old one stays refused
        _within(lambda: all(r.identify(rotated) is not None for r in (a, b)), 1.0)
        assert a.identify(token) is None and b.identify(token) is None
    finally:
        _stop(a, b)


def test_only_hashes_are_stored(handles: Callable[[], SharedState]) -> None:
    book = TokenBook(handles())
    token = book.create("crm", ["feedback"])
    book.revoke("crm")
    docs = handles().items(NS)
    assert token not in str(docs) and docs["crm"]["sha256"] == hash_token(token)


def test_a_secret_token_is_revoked_on_every_replica(handles: Callable[[], SharedState]) -> None:
    """Hashed tokens from the settings (a Kubernetes Secret) beside the shared ones; a revoke
    refuses the Secret's token everywhere until the Secret carries a new hash."""
    secret = [AuthToken(name="ci", sha256=hash_token("rng_ci"), roles=["admin"])]
    a, b = _replica(handles(), secret), _replica(handles(), secret)
    try:
        assert a.identify("rng_ci").name == "ci" and b.identify("rng_ci").name == "ci"
        assert TokenBook(handles(), secret).revoke("ci")
        _within(lambda: a.identify("rng_ci") is None and b.identify("rng_ci") is None, 1.0)
        rotated = [
            AuthToken(name="ci", sha256=hash_token("rng_ci2"), roles=["admin"])
        ]  # the Secret, rotated
        c = _replica(handles(), rotated)
        assert c.identify("rng_ci2").name == "ci" and c.identify("rng_ci") is None
        _stop(c)
    finally:
        _stop(a, b)


class Counting:
    """A store that counts the calls made on it."""

    def __init__(self, inner: SharedState) -> None:
        self.inner, self.calls, self.name = inner, 0, inner.name

    def __getattr__(self, attr: str) -> Any:
        fn = getattr(self.inner, attr)

        def counted(*args: Any) -> Any:
            self.calls += 1
            return fn(*args)

        return counted


def test_the_check_reads_memory_never_the_store(handles: Callable[[], SharedState]) -> None:
    state = Counting(handles())
    token = TokenBook(handles()).create("crm", ["feedback"])
    watched = Watched(state, NS)  # type: ignore[arg-type]
    watched.refresh()
    store = TokenStore([], watched)
    before = state.calls
    for _ in range(1000):
        assert store.identify(token).name == "crm" and store.identify("rng_nope") is None
    assert state.calls == before


def test_a_cli_in_another_process_revokes_on_a_running_replica(
    tmp_path: Path, redis_url: str
) -> None:
    """The real command in its own process, against the Redis the replica watches."""
    state = RedisSharedState(redis_url, where=redis_location(redis_url))
    token = TokenBook(state).create("crm", ["feedback"])
    replica = _replica(RedisSharedState(redis_url, where=redis_location(redis_url)))
    try:
        assert replica.identify(token) is not None
        env = {
            **os.environ,
            "REENGAGE_DATA_DIR": str(tmp_path / "data"),
            "REENGAGE_STATE": "redis",
            "REENGAGE_REDIS_URL": redis_url,
        }
        done = subprocess.run(
            [sys.executable, "-m", "serving.cli", "token", "revoke", "crm"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        _within(lambda: replica.identify(token) is None, 1.0)
    finally:
        _stop(replica)
        state.close()
