"""Is the online store ready to serve? Reachable, answering, and holding every view.

Readiness is asked often (load balancers, KubeRay, ``reengage serve --detach``) and must
never cost a request anything, so :meth:`StoreHealth.ready` answers from a cached result
at once and, when that is older than ``interval_s``, starts one background check (a
thread: the check is a blocking Redis or LMDB call). A check that has not answered
within ``deadline_s`` is itself the answer: a hung store is not ready. A read that
failed on the request path (``failed``) marks the store not ready at once, until the
next check passes.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any, Sequence

from feature_store.errors import OnlineStoreUnavailable
from feature_store.online_store.kv import KeyValueStore
from feature_store.online_store.layout import key_prefix, view_prefix


@dataclass(frozen=True)
class Health:
    ready: bool
    reason: str  # "" when ready
    checked_at: float  # monotonic s


class StoreHealth:
    """Cached readiness of one key-value store for the views a reader needs."""

    def __init__(
        self,
        kv: KeyValueStore,
        views: Sequence[str],
        prefixes: Sequence[bytes],
        *,
        interval_s: float = 1.0,
        deadline_s: float = 1.0,
    ) -> None:
        self.kv, self.views, self.prefixes = kv, tuple(views), tuple(prefixes)
        self.interval_s, self.deadline_s = interval_s, deadline_s
        self._lock = threading.Lock()
        self._state: Health | None = None
        self._running_since: float | None = None

    @classmethod
    def for_store(
        cls, store: Any, views: Sequence[str], kv: KeyValueStore, **kwargs: Any
    ) -> "StoreHealth":
        """For a Feast store's packed online store and the named views."""
        prefix = key_prefix(store.config)
        return cls(kv, views, [view_prefix(prefix, v) for v in views], **kwargs)

    def check(self) -> Health:
        """Run the check now, in the calling thread (blocking; bounded by the store's timeouts)."""
        try:
            populated = self.kv.populated(self.prefixes)
        except OnlineStoreUnavailable as exc:
            state = Health(False, str(exc), time.monotonic())
        except Exception as exc:  # noqa: BLE001 - any failure of the check is "not ready", with why
            state = Health(
                False, f"{self.kv.name} check failed: {type(exc).__name__}: {exc}", time.monotonic()
            )
        else:
            empty = [v for v, ok in zip(self.views, populated) if not ok]
            state = Health(
                not empty,
                f"{self.kv.name} holds no rows of {', '.join(empty)} (not materialized?)"
                if empty
                else "",
                time.monotonic(),
            )
        with self._lock:
            self._state = state
            self._running_since = None
        return state

    def status(self) -> Health:
        """The cached answer, refreshed in the background when older than ``interval_s``."""
        now = time.monotonic()
        with self._lock:
            state, since = self._state, self._running_since
            if since is None and (state is None or now - state.checked_at >= self.interval_s):
                self._running_since = since = now
                threading.Thread(
                    target=self.check, name="feature-store-health", daemon=True
                ).start()
        if since is not None and now - since > self.deadline_s:
            return Health(
                False,
                f"{self.kv.name} did not answer a health check within {self.deadline_s:g} s",
                now,
            )
        if state is None:
            return Health(False, f"{self.kv.name}: first health check still running", now)
        return state

    def ready(self) -> bool:
        return self.status().ready

    def failed(self, reason: str) -> None:
        """A read on the request path failed: not ready until a check passes."""
        with self._lock:
            self._state = Health(False, reason, time.monotonic())
