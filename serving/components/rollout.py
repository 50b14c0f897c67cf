"""Traffic policies between model versions: sticky weighted split, shadow, shared state.

A policy per model has a default version, weighted candidates (percent of customers)
and an optional shadow (percent of rows scored again off the answer), Seldon Core 2's
experiment shape. Assignment is sticky: a customer's bucket is a salted hash of its id,
computed for the whole id array at once (splitmix64 in numpy, no loop per customer), so
raising a canary from 10 to 20 percent keeps the first 10 percent where they were.

``ModelStates`` is the desired state of every model that the replicas follow (loaded,
policy, excluded versions, a generation per change, the moment a policy takes effect)
plus what each replica reports back; the Ray actor in ``serving.deployments.control``
holds one per application, ``LocalDesiredState`` one per process.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from serving.errors import Conflict, InvalidRequest
from serving.settings import TrafficPolicyConfig

BUCKETS = 10_000  # assignment resolution: 0.01 percent
_M1, _M2, _GOLDEN = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB), np.uint64(0x9E3779B97F4A7C15)


class VersionRefused(InvalidRequest):
    """A version that cannot serve (corrupt file, features the lookup cannot feed, a failed
    warm-up): it never takes traffic, and the message names the cause."""

    error_type = "version_refused"


class PromotionRefused(Conflict):
    """The candidate is worse than the default beyond its interval; ``--force`` overrides."""

    error_type = "promotion_refused"


def salt_key(salt: str) -> np.uint64:
    return np.uint64(int.from_bytes(hashlib.blake2b(salt.encode(), digest_size=8).digest(), "little"))


def mix(ids: np.ndarray, key: np.uint64) -> np.ndarray:
    """splitmix64 of ``ids ^ key``: uint64 hashes of a whole id array (wrapping arithmetic)."""
    z = ids.astype(np.uint64) ^ key
    z = z + _GOLDEN
    z = (z ^ (z >> np.uint64(30))) * _M1
    z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


@dataclass(frozen=True)
class TrafficPolicy:
    """What a replica applies: versions resolved, weights as bucket thresholds."""

    model: str
    default: str
    candidates: tuple[tuple[str, float], ...] = ()
    shadow: str | None = None
    shadow_percent: float = 0.0
    salt: str = ""
    _key: np.uint64 = field(default=np.uint64(0), compare=False, repr=False)
    _cuts: np.ndarray = field(default_factory=lambda: np.zeros(0, np.uint64), compare=False, repr=False)
    _codes: np.ndarray = field(default_factory=lambda: np.zeros(1, np.int8), compare=False, repr=False)

    @classmethod
    def build(cls, model: str, config: TrafficPolicyConfig, default: str) -> "TrafficPolicy":
        cands = tuple((c.version, float(c.weight)) for c in config.candidates if c.weight > 0)
        salt = config.salt or f"{model}/" + "+".join(v for v, _ in cands)
        # bucket thresholds of the candidates, then the default's end: searchsorted gives the
        # slot, ``_codes`` maps slots to version codes (default 0, candidates 1..k)
        cuts = np.array([*np.cumsum([round(w * BUCKETS / 100) for _, w in cands]), BUCKETS], dtype=np.uint64)
        shadow = config.shadow
        codes = np.array([*range(1, len(cands) + 1), 0], dtype=np.int8)
        return cls(model, default, cands, shadow.version if shadow else None, shadow.percent if shadow else 0.0,
                   salt, salt_key(salt), cuts, codes)

    @property
    def versions(self) -> tuple[str, ...]:
        """Every version the policy needs loaded: default, candidates, shadow."""
        out = [self.default, *(v for v, _ in self.candidates)]
        if self.shadow:
            out.append(self.shadow)
        return tuple(dict.fromkeys(out))

    @property
    def splits(self) -> bool:
        return bool(self.candidates)

    def to_config(self) -> dict[str, Any]:
        return {"default": self.default, "candidates": [{"version": v, "weight": w} for v, w in self.candidates],
                "shadow": {"version": self.shadow, "percent": self.shadow_percent} if self.shadow else None,
                "salt": self.salt}

    def token(self) -> str:
        """The assignment in one string (decision log): ``salt|default|v:weight,...``."""
        return f"{self.salt}|{self.default}|" + ",".join(f"{v}:{w:g}" for v, w in self.candidates)

    def assign(self, customer_ids: np.ndarray) -> tuple[np.ndarray, tuple[str, ...]]:
        """Per row, the index into the returned versions (default first, then candidates)."""
        versions = (self.default, *(v for v, _ in self.candidates))
        if not self.candidates:
            return np.zeros(len(customer_ids), np.int8), versions
        bucket = mix(customer_ids, self._key) % np.uint64(BUCKETS)
        # candidate i holds buckets [cut[i-1], cut[i]); the rest stay on the default (code 0)
        return self._codes[np.searchsorted(self._cuts, bucket, side="right")], versions

    def shadow_mask(self, customer_ids: np.ndarray) -> np.ndarray:
        """Rows the shadow also scores: the hash's high bits, independent of the bucket."""
        if self.shadow_percent >= 100:
            return np.ones(len(customer_ids), bool)
        high = mix(customer_ids, self._key) >> np.uint64(40)
        return high % np.uint64(BUCKETS) < np.uint64(round(self.shadow_percent * BUCKETS / 100))


def versions_from_token(token: str, customer_ids: np.ndarray) -> np.ndarray:
    """The version of each row of a decision-log batch recorded with ``TrafficPolicy.token``."""
    salt, default, rest = token.split("|", 2)
    pairs = [part.split(":") for part in rest.split(",") if part]
    config = TrafficPolicyConfig(default=default, salt=salt,
                                 candidates=[{"version": v, "weight": float(w)} for v, w in pairs])
    codes, versions = TrafficPolicy.build("", config, default).assign(customer_ids)
    return np.asarray(versions, dtype=object)[codes]


# -- shadow summaries ------------------------------------------------------------------
DIFF_EDGES = np.array([0.001, 0.01, 0.05, 0.1, 0.2, 0.5, 1.0])


@dataclass
class ShadowStats:
    """Shadow against default on one replica: |score difference| histogram and latencies."""

    rows: int = 0
    sum_diff: float = 0.0
    sum_abs: float = 0.0
    max_abs: float = 0.0
    abs_hist: list[int] = field(default_factory=lambda: [0] * (len(DIFF_EDGES) + 1))
    shadow_ms: float = 0.0
    shadow_calls: int = 0
    default_ms: float = 0.0
    default_calls: int = 0

    def add(self, served: np.ndarray, shadow: np.ndarray, latency_ms: float) -> None:
        diff = shadow.astype(np.float64) - served.astype(np.float64)
        diff = diff[np.isfinite(diff)]
        a = np.abs(diff)
        self.rows += len(diff)
        self.sum_diff += float(diff.sum())
        self.sum_abs += float(a.sum())
        self.max_abs = max(self.max_abs, float(a.max()) if len(a) else 0.0)
        for i, n in enumerate(np.bincount(np.searchsorted(DIFF_EDGES, a), minlength=len(self.abs_hist)).tolist()):
            self.abs_hist[i] += n
        self.shadow_ms += latency_ms
        self.shadow_calls += 1

    def default_call(self, latency_ms: float) -> None:
        self.default_ms += latency_ms
        self.default_calls += 1

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @staticmethod
    def summary(parts: list[dict[str, Any]]) -> dict[str, Any]:
        """Merged over replicas: mean and mean absolute difference, a p95 bound, latencies."""
        total = ShadowStats()
        for p in parts:
            for k, v in p.items():
                if k == "abs_hist":
                    total.abs_hist = [a + b for a, b in zip(total.abs_hist, v)]
                elif k == "max_abs":
                    total.max_abs = max(total.max_abs, v)
                else:
                    setattr(total, k, getattr(total, k) + v)
        n = total.rows
        p95 = None
        if n:
            rank = np.searchsorted(np.cumsum(total.abs_hist), 0.95 * n)
            p95 = float(DIFF_EDGES[rank]) if rank < len(DIFF_EDGES) else float(total.max_abs)
        return {
            "rows": n,
            "mean_diff": total.sum_diff / n if n else None,
            "mean_abs_diff": total.sum_abs / n if n else None,
            "p95_abs_diff_at_most": p95,
            "max_abs_diff": total.max_abs if n else None,
            "abs_diff_histogram": {f"<{e:g}": c for e, c in zip(DIFF_EDGES, total.abs_hist)}
            | {f">={DIFF_EDGES[-1]:g}": total.abs_hist[-1]},
            "shadow_latency_ms": total.shadow_ms / total.shadow_calls if total.shadow_calls else None,
            "default_latency_ms": total.default_ms / total.default_calls if total.default_calls else None,
        }


# -- desired state shared by the replicas ------------------------------------------------
def fresh_state() -> dict[str, Any]:
    return {"generation": 0, "loaded": True, "policy": None, "excluded": [], "activate_at": 0.0,
            "changed_at": 0.0, "config": None, "previous": None}


class ModelStates:
    """Desired state per model and the replicas' reports. Plain Python: the Ray actor in
    ``serving.deployments.control`` wraps it, ``LocalDesiredState`` holds one in-process."""

    def __init__(self) -> None:
        # generations count within one epoch: a restarted actor starts a new epoch, which the
        # replicas follow although its generations start again from 0
        self.epoch = secrets.token_hex(4)
        self._state: dict[str, dict[str, Any]] = {}
        self._reports: dict[str, dict[str, dict[str, Any]]] = {}

    def get(self, model: str) -> dict[str, Any]:
        return {**(self._state.get(model) or fresh_state()), "epoch": self.epoch}

    def update(self, model: str, changes: dict[str, Any]) -> dict[str, Any]:
        """Apply ``changes`` and bump the generation; ``policy`` changes keep the previous one."""
        state = self._state.setdefault(model, fresh_state())
        if "policy" in changes:
            state["previous"] = state["policy"]
        state.update(changes)
        state["generation"] += 1
        state["changed_at"] = time.time()
        return {**state, "epoch": self.epoch}

    def seed(self, model: str, policy: dict[str, Any] | None, fingerprint: str, activate_at: float) -> dict[str, Any]:
        """The Serve config's policy: applied when it differs from the config seen last, so
        `serve deploy` of a changed policy wins, and live changes survive a replica restart."""
        state = self._state.get(model) or fresh_state()
        if state.get("config") == fingerprint:
            return {**state, "epoch": self.epoch}
        return self.update(model, {"policy": policy, "config": fingerprint, "activate_at": activate_at})

    def sync(self, model: str, replica: str, report: dict[str, Any]) -> dict[str, Any]:
        """A replica's poll: its report in, the desired state out (one round trip)."""
        self._reports.setdefault(model, {})[replica] = {**report, "seen_at": time.time()}
        return self.get(model)

    def reports(self, model: str, max_age_s: float = 30.0) -> dict[str, dict[str, Any]]:
        """Reports of the replicas seen within ``max_age_s`` (gone replicas drop out)."""
        now = time.time()
        live = {r: v for r, v in self._reports.get(model, {}).items() if now - v["seen_at"] <= max_age_s}
        self._reports[model] = live
        return live


class DesiredState(Protocol):
    """Per model: loaded or not, traffic policy, excluded versions, a generation that bumps
    on every change; and what each replica last reported (``ModelStates``)."""

    async def update(self, model: str, changes: dict[str, Any]) -> dict[str, Any]: ...

    async def get(self, model: str) -> dict[str, Any]: ...

    async def seed(self, model: str, policy: dict[str, Any] | None, fingerprint: str,
                   activate_at: float) -> dict[str, Any]: ...

    async def sync(self, model: str, replica: str, report: dict[str, Any]) -> dict[str, Any]: ...

    async def reports(self, model: str, max_age_s: float = 30.0) -> dict[str, dict[str, Any]]: ...


class LocalDesiredState:
    """One process, one state: what a single uvicorn worker or a unit test needs."""

    def __init__(self, states: ModelStates | None = None) -> None:
        self.states = states or ModelStates()

    async def update(self, model: str, changes: dict[str, Any]) -> dict[str, Any]:
        return self.states.update(model, changes)

    async def get(self, model: str) -> dict[str, Any]:
        return self.states.get(model)

    async def seed(self, model: str, policy: dict[str, Any] | None, fingerprint: str,
                   activate_at: float) -> dict[str, Any]:
        return self.states.seed(model, policy, fingerprint, activate_at)

    async def sync(self, model: str, replica: str, report: dict[str, Any]) -> dict[str, Any]:
        return self.states.sync(model, replica, report)

    async def reports(self, model: str, max_age_s: float = 30.0) -> dict[str, dict[str, Any]]:
        return self.states.reports(model, max_age_s)
