"""The bandit router: one vectorized decision per batch, rewards from any replica.

Plain Python (no Ray): the serving layer wraps it in a deployment. A ``decide`` call of N
rows is one policy evaluation over an (N, d) context matrix, one categorical draw, at
most one contact-cap round trip and one log write; decision ids are ``<batch>-<row>``,
so the log keeps one record per batch and a reward finds its row by offset.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from serving.bandit.policies import Layout, Policy, row_increments, sample_actions
from serving.bandit.state import (CONFLICT, CONTACT_CAP, HOLDOUT, MISSING, NOT_FOUND, OK, POLICY, REASONS,
                                  Backend, BatchRecord, Pending, open_backend)
from serving.errors import Conflict, DecisionNotFound, InvalidRequest
from serving.settings import BanditSettings

SCORE_COLUMNS = {"churn_probability": "churn", "engagement_probability": "engagement"}
_ID = re.compile(r"^([0-9a-f]{16})-(\d{1,7})$")
_REASON_NAMES = np.array(REASONS, dtype=object)


@dataclass
class Decisions:
    """Per-row results in request order; rows without a decision hold None / -1 / NaN."""

    action: np.ndarray  # object: str | None
    arm_index: np.ndarray  # int64, -1: none
    decision_id: np.ndarray  # object: str | None
    propensity: np.ndarray  # float64, NaN: none
    reason: np.ndarray  # object: "policy" | "holdout" | "contact_cap" | "not_found"
    policy_version: str
    batch_id: str

    def __len__(self) -> int:
        return int(len(self.action))

    def columns(self) -> dict[str, list[object]]:
        """JSON-ready columns (NaN propensity -> None) for the v1 answer."""
        prop = np.where(np.isnan(self.propensity), None, self.propensity.astype(object))
        return {"action": self.action.tolist(), "decision_id": list(self.decision_id),
                "propensity": prop.tolist(), "reason": self.reason.tolist()}


def holdout_mask(customer_ids: np.ndarray, share: float, salt: str) -> np.ndarray:
    """Stable per-customer holdout: a salted splitmix64 hash mapped to [0, 1) below ``share``."""
    if share <= 0:
        return np.zeros(len(customer_ids), bool)
    seed = np.uint64(int.from_bytes(hashlib.blake2b(salt.encode(), digest_size=8).digest(), "little"))
    with np.errstate(over="ignore"):
        z = np.asarray(customer_ids, dtype=np.int64).view(np.uint64) + seed
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) / float(1 << 53) < share


def state_fingerprint(settings: BanditSettings) -> str:
    """State is keyed by arms and context layout: changing either starts fresh statistics."""
    spec = "|".join(settings.arms) + "#" + "|".join(settings.context_features)
    return hashlib.sha1(spec.encode()).hexdigest()[:10]


class BanditRouter:
    """Decides actions for batches of customers and learns from rewards (shared state)."""

    def __init__(self, settings: BanditSettings, *, backend: Backend | None = None) -> None:
        self.settings = settings
        self.arms = tuple(settings.arms)
        self.context_names = tuple(settings.context_features)
        self.layout = Layout(len(self.arms), len(self.context_names))
        self.policy = Policy(settings.policy, self.layout, epsilon=settings.epsilon, alpha=settings.alpha,
                             ridge=settings.ridge, samples=settings.ts_samples)
        self.backend = backend if backend is not None else open_backend(settings)
        self.fingerprint = state_fingerprint(settings)
        self.state_key = f":state:{self.fingerprint}"
        self.control = self.arms.index(settings.control_arm) if settings.control_arm in self.arms else -1
        self._rng = np.random.default_rng(settings.seed)
        self._lock = threading.Lock()
        self._version, self._stats = -1, self.layout.zeros()
        self._checked = -np.inf
        self.sync(force=True)

    # ------------------------------------------------------------------ state sync
    @property
    def policy_version(self) -> str:
        return f"{self.settings.policy}:{self.fingerprint}:{self._version}"

    @property
    def stats(self) -> np.ndarray:
        """(K, m) statistics this replica currently decides with."""
        return self._stats

    def sync(self, *, force: bool = False) -> bool:
        """Pick up state learned by any replica: a version check, a read only on change."""
        mono = time.monotonic()
        if not force and mono - self._checked < self.settings.sync_interval_s:
            return False
        self._checked = mono
        if not force and self.backend.state_version(self.state_key) == self._version:
            return False
        version, stats = self.backend.read_state(self.state_key, (self.layout.n_arms, self.layout.width))
        with self._lock:
            self._version, self._stats = version, stats
        return True

    # ------------------------------------------------------------------ context
    def build_context(self, features: np.ndarray, feature_names: Sequence[str], churn: np.ndarray,
                      engagement: np.ndarray) -> np.ndarray:
        """(N, d) float32 context in ``context_features`` order, one gather, no row loop."""
        features = np.asarray(features, dtype=np.float32)
        scores = {"churn": np.asarray(churn, np.float32), "engagement": np.asarray(engagement, np.float32)}
        index = {n: i for i, n in enumerate(feature_names)}
        self.check_feature_names(feature_names)
        extended = np.hstack([features, scores["churn"][:, None], scores["engagement"][:, None]])
        f = features.shape[1]
        cols = [index[c] if c in index else f + (0 if SCORE_COLUMNS[c] == "churn" else 1) for c in self.context_names]
        return np.ascontiguousarray(extended[:, cols], dtype=np.float32)

    def check_feature_names(self, feature_names: Sequence[str]) -> None:
        """Fail fast (at replica start) when ``context_features`` names a feature not served:
        a configuration error, not the caller's, so a ValueError rather than a 4xx."""
        missing = [c for c in self.context_names if c not in feature_names and c not in SCORE_COLUMNS]
        if missing:
            raise ValueError(f"bandit.context_features {missing} are not among the features read "
                             f"({list(feature_names)}) nor the scores {list(SCORE_COLUMNS)}")

    # ------------------------------------------------------------------ decide
    def decide(self, customer_ids: np.ndarray, context: np.ndarray, *, eligible: np.ndarray,
               model_versions: dict[str, str], feature_digest: np.ndarray | None = None,
               feature_ts: np.ndarray | None = None, now: float | None = None) -> Decisions:
        """Actions for N customers; holdout and contact caps are enforced here and logged."""
        now = time.time() if now is None else float(now)
        ids, x, ok = self._validate(customer_ids, context, eligible)
        self.sync()
        n = len(ids)
        reason = np.where(ok, POLICY, NOT_FOUND).astype(np.uint8)
        reason[ok & holdout_mask(ids, self.settings.holdout_share, self.settings.holdout_salt)] = HOLDOUT
        arm = np.full(n, -1, dtype=np.int64)
        prop = np.full(n, np.nan)
        pol = reason == POLICY
        with self._lock:
            stats, version = self._stats, self.policy_version
            probs = self.policy.probabilities(x[pol], stats, self._rng)
            arm[pol], prop[pol] = sample_actions(probs, self._rng)
        held = reason == HOLDOUT
        arm[held], prop[held] = self.control, 1.0
        self._apply_caps(ids, arm, prop, reason, now)
        bid = secrets.token_hex(8)
        rec = BatchRecord(bid, now, self.settings.policy, version, dict(model_versions), self.arms,
                          self.context_names, ids, x, arm.astype(np.int16), prop, reason, feature_digest, feature_ts)
        self.backend.log_batch(rec, self.settings.reward_window_s)
        return self._answer(bid, arm, prop, reason, version)

    def _validate(self, customer_ids: np.ndarray, context: np.ndarray,
                  eligible: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        ids = np.asarray(customer_ids, dtype=np.int64).reshape(-1)
        x = np.asarray(context, dtype=np.float32)
        ok = np.asarray(eligible, dtype=bool).reshape(-1)
        if x.ndim != 2 or x.shape != (len(ids), len(self.context_names)):
            raise InvalidRequest(f"context must be (N={len(ids)}, d={len(self.context_names)}), got {x.shape}",
                                 field="context")
        if ok.shape != ids.shape:
            raise InvalidRequest(f"eligible must be ({len(ids)},), got {ok.shape}", field="eligible")
        return ids, x, ok

    def _apply_caps(self, ids: np.ndarray, arm: np.ndarray, prop: np.ndarray, reason: np.ndarray,
                    now: float) -> None:
        """Contacts beyond K per window become the control arm (reason ``contact_cap``)."""
        cap = self.settings.contact_cap
        if cap <= 0 or self.control < 0:
            return
        contact = np.flatnonzero((reason == POLICY) & (arm != self.control))
        if len(contact) == 0:
            return
        allowed = self.backend.reserve_contacts(ids[contact], now, self.settings.contact_window_s, cap)
        capped = contact[~allowed]
        arm[capped], prop[capped], reason[capped] = self.control, 1.0, CONTACT_CAP

    def _answer(self, bid: str, arm: np.ndarray, prop: np.ndarray, reason: np.ndarray, version: str) -> Decisions:
        has = arm >= 0
        names = np.array(self.arms + (None,), dtype=object)
        ids = np.full(len(arm), None, dtype=object)
        rows = np.flatnonzero(has)
        ids[rows] = np.strings.add(bid + "-", rows.astype(np.str_)).astype(object)
        return Decisions(names[arm], arm, ids, prop, _REASON_NAMES[reason], version, bid)

    # ------------------------------------------------------------------ feedback
    def feedback(self, decision_id: str, reward: float, *, now: float | None = None) -> dict[str, object]:
        """Record one reward; 404 unknown/expired, 409 second reward, 422 malformed."""
        if not isinstance(decision_id, str) or not _ID.match(decision_id):
            raise InvalidRequest("decision_id must look like '<16 hex>-<row>' as returned by a decision",
                                 field="decision_id")
        try:
            value = float(reward)
        except (TypeError, ValueError):
            raise InvalidRequest("reward must be a number", field="reward") from None
        self._check_reward(np.array([value]))
        status, pend, update = self._record([decision_id], np.array([value]), now)
        if status[0] == MISSING:
            raise DecisionNotFound(f"unknown or expired decision id {decision_id!r}", field="decision_id")
        if status[0] == CONFLICT:
            raise Conflict(f"decision {decision_id!r} already has a reward", field="decision_id")
        arm = int(pend.arm[0])
        return {"decision_id": decision_id, "reward": value, "action": self.arms[arm] if arm < len(self.arms) else None,
                "reason": REASONS[int(pend.reason[0])], "policy_updated": bool(update[0])}

    def feedback_many(self, decision_ids: Sequence[str], rewards: np.ndarray, *,
                      now: float | None = None) -> np.ndarray:
        """Batch rewards (simulation, bulk import): status per id, "ok" | "not_found" | "conflict" | "invalid"."""
        r = np.asarray(rewards, dtype=np.float64).reshape(-1)
        if len(r) != len(decision_ids):
            raise InvalidRequest("one reward per decision id", field="reward")
        valid = np.array([isinstance(d, str) and bool(_ID.match(d)) for d in decision_ids], dtype=bool)
        valid &= self._reward_ok(r)
        out = np.full(len(r), "invalid", dtype=object)
        idx = np.flatnonzero(valid)
        if len(idx):
            status, _, _ = self._record([decision_ids[i] for i in idx.tolist()], r[idx], now)
            out[idx] = np.array(["not_found", "ok", "conflict"], dtype=object)[_code(status)]
        return out

    def _reward_ok(self, r: np.ndarray) -> np.ndarray:
        ok = np.isfinite(r)
        if self.settings.policy == "thompson":
            ok &= (r >= 0) & (r <= 1)
        return ok

    def _check_reward(self, r: np.ndarray) -> None:
        if not self._reward_ok(r).all():
            rng = " in [0, 1] (Beta-Bernoulli Thompson sampling)" if self.settings.policy == "thompson" else ""
            raise InvalidRequest(f"reward must be a finite number{rng}", field="reward")

    def _record(self, decision_ids: Sequence[str], rewards: np.ndarray,
                now: float | None) -> tuple[np.ndarray, Pending, np.ndarray]:
        now = time.time() if now is None else float(now)
        parts = [_ID.match(d).groups() for d in decision_ids]  # type: ignore[union-attr]
        bids = [p[0] for p in parts]
        rows = np.array([int(p[1]) for p in parts], dtype=np.int64)
        pend = self.backend.pending(bids, rows, self.layout.dim)
        live = pend.found & (pend.arm >= 0) & (pend.t + self.settings.reward_window_s >= now)
        update = live & (pend.reason == POLICY) & pend.dim_ok & (pend.arm < self.layout.n_arms)
        inc = row_increments(self.layout, pend.context, rewards)
        status = np.full(len(bids), MISSING, dtype=np.int8)
        sel = np.flatnonzero(live)
        if len(sel):
            status[sel] = self.backend.record_rewards(
                self.state_key, [bids[i] for i in sel], rows[sel], rewards[sel], now, inc[sel],
                np.maximum(pend.arm[sel], 0), update[sel], self.settings.discount,
                (self.layout.n_arms, self.layout.width))
        if (status == OK).any():
            self._checked = -np.inf  # next decide re-reads: this replica's own reward counts at once
        return status, pend, update & (status == OK)

    def close(self) -> None:
        self.backend.close()


def _code(status: np.ndarray) -> np.ndarray:
    """OK / MISSING / CONFLICT (1, 0, -1) -> index into ("not_found", "ok", "conflict")."""
    return np.select([status == OK, status == CONFLICT], [1, 2], 0)
