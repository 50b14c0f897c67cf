"""Small documents that every replica on every node shares: rollout policies, tokens,
consent, suppression entries.

They live where the bandit state lives (the one state switch): an sqlite file in the
data directory when the state is embedded, Redis otherwise. Each namespace has a
generation counter that every write bumps in the same transaction, so a replica learns
that something changed with one cheap read and reloads only then (``Watched``).

Values are JSON objects. Writes are rare (admin and CRM calls); reads on a hot path go
through ``Watched``'s in-memory copy, refreshed by a background thread, never through the
store on the event loop.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

from serving.errors import DependencyUnavailable
from serving.settings import Settings

Doc = dict[str, Any]


class SharedState(Protocol):
    """Namespaced JSON documents with a per-namespace generation."""

    name: str  # what an error names: "shared state (sqlite)" or "shared state (redis at h:p)"

    def put(self, ns: str, key: str, value: Mapping[str, Any]) -> int:
        """Write one document; returns the namespace's new generation."""
        ...

    def get(self, ns: str, key: str) -> Doc | None: ...

    def delete(self, ns: str, key: str) -> bool:
        """True when the key existed (the generation moves only then)."""
        ...

    def items(self, ns: str) -> dict[str, Doc]: ...

    def generation(self, ns: str) -> int: ...

    def close(self) -> None: ...


_SCHEMA = """
CREATE TABLE IF NOT EXISTS docs(ns TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,
  updated REAL NOT NULL, PRIMARY KEY(ns, key)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS generations(ns TEXT PRIMARY KEY, gen INTEGER NOT NULL) WITHOUT ROWID;
"""


class SqliteSharedState:
    """Embedded: one sqlite file shared by the replica processes of one machine (WAL mode,
    each write one ``BEGIN IMMEDIATE`` transaction)."""

    def __init__(self, path: Path, *, busy_timeout_s: float = 5.0) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.name = "shared state (sqlite)"
        self._lock = threading.Lock()
        self._db = sqlite3.connect(
            self.path, timeout=busy_timeout_s, isolation_level=None, check_same_thread=False
        )
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                yield self._db
                self._db.execute("COMMIT")
            except sqlite3.OperationalError as exc:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise DependencyUnavailable(f"{self.name} is unavailable: {exc}") from None
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise

    def _bump(self, db: sqlite3.Connection, ns: str) -> int:
        db.execute(
            "INSERT INTO generations VALUES(?, ?) ON CONFLICT(ns) DO UPDATE SET gen = gen + 1",
            (ns, _first_generation()),
        )
        return int(db.execute("SELECT gen FROM generations WHERE ns=?", (ns,)).fetchone()[0])

    def put(self, ns: str, key: str, value: Mapping[str, Any]) -> int:
        text = json.dumps(dict(value), separators=(",", ":"), sort_keys=True)
        with self._tx() as db:
            db.execute(
                "INSERT OR REPLACE INTO docs VALUES(?, ?, ?, ?)", (ns, key, text, time.time())
            )
            return self._bump(db, ns)

    def get(self, ns: str, key: str) -> Doc | None:
        row = self._read("SELECT value FROM docs WHERE ns=? AND key=?", (ns, key))
        return json.loads(row[0][0]) if row else None

    def delete(self, ns: str, key: str) -> bool:
        with self._tx() as db:
            gone = db.execute("DELETE FROM docs WHERE ns=? AND key=?", (ns, key)).rowcount > 0
            if gone:
                self._bump(db, ns)
            return gone

    def items(self, ns: str) -> dict[str, Doc]:
        return {
            k: json.loads(v) for k, v in self._read("SELECT key, value FROM docs WHERE ns=?", (ns,))
        }

    def generation(self, ns: str) -> int:
        row = self._read("SELECT gen FROM generations WHERE ns=?", (ns,))
        return int(row[0][0]) if row else 0

    def _read(self, sql: str, args: tuple[object, ...]) -> list[Any]:
        with self._lock:
            try:
                return self._db.execute(sql, args).fetchall()
            except sqlite3.OperationalError as exc:
                raise DependencyUnavailable(f"{self.name} is unavailable: {exc}") from None

    def close(self) -> None:
        with self._lock:
            self._db.close()


class RedisSharedState:
    """Production: one Redis hash per namespace plus its generation counter, written together
    in one MULTI/EXEC, so a reader that sees the new generation sees the new document."""

    def __init__(
        self, url: str, *, where: str, timeout_s: float = 0.5, prefix: str = "{reengage:shared}:"
    ) -> None:
        import redis

        self._redis_mod = redis
        self.timeout_s = timeout_s
        self.name = f"shared state (redis at {where})"
        self.r: Any = redis.Redis.from_url(
            url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s
        )
        self.prefix = prefix

    def _call(self, fn: Callable[..., Any], *args: Any) -> Any:
        try:
            return fn(*args)
        except self._redis_mod.TimeoutError:
            raise DependencyUnavailable(
                f"{self.name} did not answer within {self.timeout_s} s"
            ) from None
        except self._redis_mod.ConnectionError as exc:
            raise DependencyUnavailable(
                f"{self.name} is unavailable: {type(exc).__name__}"
            ) from None

    def _keys(self, ns: str) -> tuple[str, str]:
        return self.prefix + ns, self.prefix + ns + ":gen"

    def put(self, ns: str, key: str, value: Mapping[str, Any]) -> int:
        docs, gen = self._keys(ns)
        text = json.dumps(dict(value), separators=(",", ":"), sort_keys=True)

        def tx() -> int:
            pipe = self.r.pipeline(transaction=True)
            pipe.hset(docs, key, text)
            pipe.set(gen, _first_generation() - 1, nx=True)
            pipe.incr(gen)
            return int(pipe.execute()[2])

        return int(self._call(tx))

    def get(self, ns: str, key: str) -> Doc | None:
        raw = self._call(self.r.hget, self._keys(ns)[0], key)
        return None if raw is None else json.loads(raw)

    def delete(self, ns: str, key: str) -> bool:
        docs, gen = self._keys(ns)

        def tx() -> bool:
            pipe = self.r.pipeline(transaction=True)
            pipe.hdel(docs, key)
            pipe.set(gen, _first_generation() - 1, nx=True)
            pipe.incr(gen)
            return bool(pipe.execute()[0])

        return bool(self._call(tx))

    def items(self, ns: str) -> dict[str, Doc]:
        raw = self._call(self.r.hgetall, self._keys(ns)[0])
        return {k.decode(): json.loads(v) for k, v in raw.items()}

    def generation(self, ns: str) -> int:
        return int(self._call(self.r.get, self._keys(ns)[1]) or 0)

    def close(self) -> None:
        self.r.close()


def _first_generation() -> int:
    """A namespace's first generation is random, not 1: a store that was wiped and written
    again must not reach the very number a replica last saw and so hide the change."""
    return secrets.randbits(40) + 1


def redis_location(url: str) -> str:
    """``host:port/db`` of a Redis URL: what an error may name (never user or password)."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    db = parts.path.lstrip("/") or "0"
    return f"{parts.hostname or '127.0.0.1'}:{parts.port or 6379}/{db}"


def open_shared_state(settings: Settings) -> SharedState:
    """The shared state of this deployment: Redis when the bandit state is in Redis (the
    one state switch), else ``<data_dir>/state/shared.sqlite``."""
    return open_state_spec(state_spec(settings))


def state_spec(settings: Settings) -> dict[str, Any]:
    """Where the shared state is, as plain data: what a process that has no ``Settings``
    (a Ray actor) opens it from with ``open_state_spec``."""
    b = settings.bandit
    if b.backend == "redis":
        return {"backend": "redis", "url": b.redis_url, "timeout_s": max(b.timeout_s, 0.5)}
    return {"backend": "sqlite", "path": str(settings.data_dir / "state" / "shared.sqlite")}


def open_state_spec(spec: Mapping[str, Any]) -> SharedState:
    if spec["backend"] == "redis":
        return RedisSharedState(
            spec["url"], where=redis_location(spec["url"]), timeout_s=spec["timeout_s"]
        )
    return SqliteSharedState(Path(spec["path"]))


class Watched:
    """An in-memory copy of one namespace, reloaded when its generation moves.

    ``refresh`` costs one generation read when nothing changed. ``start`` runs it on a
    daemon thread every ``interval_s``, so hot paths read ``snapshot`` (a plain dict,
    replaced whole, never mutated) without touching the store. A store that is down
    keeps the last good copy and counts the failure (``errors``).
    """

    def __init__(self, store: SharedState, ns: str) -> None:
        self.store, self.ns = store, ns
        self.snapshot: dict[str, Doc] = {}
        self.generation = -1
        self.errors = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._listeners: list[Callable[[dict[str, Doc]], None]] = []

    def on_change(self, fn: Callable[[dict[str, Doc]], None]) -> None:
        """Call ``fn(snapshot)`` after every reload (on the refreshing thread)."""
        self._listeners.append(fn)

    def refresh(self) -> bool:
        """Reload if the generation moved; True when it did."""
        gen = self.store.generation(self.ns)
        if gen == self.generation:
            return False
        self.snapshot = self.store.items(self.ns)
        self.generation = gen
        for fn in self._listeners:
            fn(self.snapshot)
        return True

    def start(self, interval_s: float) -> Watched:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, args=(interval_s,), name=f"watch-{self.ns}", daemon=True
            )
            self._thread.start()
        return self

    def _run(self, interval_s: float) -> None:
        while not self._stop.is_set():
            try:
                self.refresh()
            except DependencyUnavailable:
                self.errors += 1
            self._stop.wait(interval_s)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
