"""The desired state of every model that the replicas follow, kept durable.

Per model: loaded or not, the traffic policy (with its salt and bucket ranges), excluded
versions, a generation that bumps on every change, the moment a change takes effect.
``ModelStates`` holds it and what each replica reported back; the Ray actor in
``serving.deployments.control`` holds one per application, ``LocalDesiredState`` one
per process.

With a shared state store (``serving.shared_state``: sqlite in the data dir, or Redis by
the one state switch) every change is written there before it is acknowledged, one
document per model, plus one history entry per change. A new ``ModelStates`` over the
same store (a replaced control actor, a restarted app) reads the documents back, with
their epoch and generation, so the replicas see nothing new and no customer moves.
Without a store (unit tests, one process) the state lives in memory; a new instance then
starts a new epoch, which the replicas follow although its generations start at 0.
The replicas' reports are kept in memory only: each replica sends its own on every poll.
"""

from __future__ import annotations

import asyncio
import secrets
import threading
import time
from collections.abc import Callable
from typing import Any, ParamSpec, Protocol, TypeVar

from serving.shared_state import SharedState, open_state_spec

P = ParamSpec("P")
T = TypeVar("T")


def fresh_state() -> dict[str, Any]:
    return {
        "generation": 0,
        "loaded": True,
        "policy": None,
        "excluded": [],
        "activate_at": 0.0,
        "changed_at": 0.0,
        "config": None,
        "previous": None,
    }


class ModelStates:
    """Desired state per model and the replicas' reports. Plain Python: the Ray actor in
    ``serving.deployments.control`` wraps it, ``LocalDesiredState`` holds one in-process.

    ``store``: a ``SharedState``, or its spec (``shared_state.state_spec``: what a Ray
    actor is created with), or None (memory only). ``ns``: the store namespace (one per
    Serve application)."""

    def __init__(
        self, store: SharedState | dict[str, Any] | None = None, ns: str = "rollout"
    ) -> None:
        self.epoch = secrets.token_hex(4)
        self.store = open_state_spec(store) if isinstance(store, dict) else store
        self.ns = ns
        self._state: dict[str, dict[str, Any]] = {}
        self._reports: dict[str, dict[str, dict[str, Any]]] = {}
        self._lock = threading.RLock()

    def _model(self, model: str) -> dict[str, Any] | None:
        """The model's state, read from the store the first time this instance needs it."""
        state = self._state.get(model)
        if state is None and self.store is not None:
            state = self.store.get(self.ns, model)
            if state is not None:
                self._state[model] = state
        return state

    def get(self, model: str) -> dict[str, Any]:
        with self._lock:
            state = self._model(model)
            return {**(state or fresh_state()), "epoch": (state or {}).get("epoch") or self.epoch}

    def update(self, model: str, changes: dict[str, Any]) -> dict[str, Any]:
        """Apply ``changes`` and bump the generation; ``policy`` changes keep the previous
        one. Written to the store (and its history) before the answer: a store that is
        down fails the change (503), it never half-applies."""
        with self._lock:
            state = dict(self._model(model) or {**fresh_state(), "epoch": self.epoch})
            if "policy" in changes:
                state["previous"] = state["policy"]
            state.update(changes)
            state["generation"] += 1
            state["changed_at"] = time.time()
            if self.store is not None:
                self.store.put(self.ns, model, state)
                self.store.put(
                    f"{self.ns}.history",
                    f"{model}:{state['generation']:010d}",
                    {
                        "at": state["changed_at"],
                        "model": model,
                        "generation": state["generation"],
                        "changes": changes,
                    },
                )
            self._state[model] = state
            return {**state, "epoch": state.get("epoch") or self.epoch}

    def history(self, model: str, last: int | None = None) -> list[dict[str, Any]]:
        """The changes of ``model`` in order, the ``last`` ones only when given (empty
        without a store)."""
        if self.store is None:
            return []
        entries = self.store.items(f"{self.ns}.history")
        out = [entries[k] for k in sorted(entries) if k.startswith(f"{model}:")]
        return out[-last:] if last else out

    def seed(
        self, model: str, policy: dict[str, Any] | None, fingerprint: str, activate_at: float
    ) -> dict[str, Any]:
        """The Serve config's policy: applied when it differs from the config seen last, so
        `serve deploy` of a changed policy wins, and live changes survive a replica (or
        app) restart."""
        with self._lock:
            state = self._model(model)
            if (state or {}).get("config") == fingerprint:
                return self.get(model)
            return self.update(
                model, {"policy": policy, "config": fingerprint, "activate_at": activate_at}
            )

    def sync(self, model: str, replica: str, report: dict[str, Any]) -> dict[str, Any]:
        """A replica's poll: its report in, the desired state out (one round trip)."""
        with self._lock:
            self._reports.setdefault(model, {})[replica] = {**report, "seen_at": time.time()}
        return self.get(model)

    def reports(self, model: str, max_age_s: float = 30.0) -> dict[str, dict[str, Any]]:
        """Reports of the replicas seen within ``max_age_s`` (gone replicas drop out)."""
        now = time.time()
        with self._lock:
            live = {
                r: v
                for r, v in self._reports.get(model, {}).items()
                if now - v["seen_at"] <= max_age_s
            }
            self._reports[model] = live
        return live


class DesiredState(Protocol):
    """Per model: loaded or not, traffic policy, excluded versions, a generation that bumps
    on every change; and what each replica last reported (``ModelStates``)."""

    async def update(self, model: str, changes: dict[str, Any]) -> dict[str, Any]: ...

    async def get(self, model: str) -> dict[str, Any]: ...

    async def seed(
        self, model: str, policy: dict[str, Any] | None, fingerprint: str, activate_at: float
    ) -> dict[str, Any]: ...

    async def sync(self, model: str, replica: str, report: dict[str, Any]) -> dict[str, Any]: ...

    async def reports(self, model: str, max_age_s: float = 30.0) -> dict[str, dict[str, Any]]: ...

    async def history(self, model: str, last: int | None = None) -> list[dict[str, Any]]: ...


class LocalDesiredState:
    """One process, one state: what a single uvicorn worker or a unit test needs. Calls
    that may touch the store run in a thread, off the event loop."""

    def __init__(self, states: ModelStates | None = None) -> None:
        self.states = states or ModelStates()

    async def update(self, model: str, changes: dict[str, Any]) -> dict[str, Any]:
        return await self._call(self.states.update, model, changes)

    async def get(self, model: str) -> dict[str, Any]:
        return await self._call(self.states.get, model)

    async def seed(
        self, model: str, policy: dict[str, Any] | None, fingerprint: str, activate_at: float
    ) -> dict[str, Any]:
        return await self._call(self.states.seed, model, policy, fingerprint, activate_at)

    async def sync(self, model: str, replica: str, report: dict[str, Any]) -> dict[str, Any]:
        return await self._call(self.states.sync, model, replica, report)

    async def reports(self, model: str, max_age_s: float = 30.0) -> dict[str, dict[str, Any]]:
        return self.states.reports(model, max_age_s)

    async def history(self, model: str, last: int | None = None) -> list[dict[str, Any]]:
        return await self._call(self.states.history, model, last)

    async def _call(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        if self.states.store is None:  # memory only: nothing to wait for
            return fn(*args, **kwargs)
        return await asyncio.to_thread(fn, *args, **kwargs)
