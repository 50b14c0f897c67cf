"""Rewards against logged decisions, from any replica.

A reward finds its decision by id (``<batch>-<row>``) in the shared log, waits for that
decision's own group commit if it is still queued here, and updates the shared
statistics only for policy rows inside their reward window; a second reward for one
decision is a conflict.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable, Sequence

import numpy as np

from serving.bandit.policies import Layout, row_increments
from serving.bandit.state import (
    REASONS,
    GroupCommitter,
    Pending,
    Reason,
    RewardStatus,
    RewardUpdate,
    StateStore,
)
from serving.errors import Conflict, DecisionNotFound, DependencyUnavailable, InvalidRequest
from serving.settings import BanditSettings

DECISION_ID = re.compile(r"^([0-9a-f]{16})-(\d{1,7})$")
STATUS_NAMES = np.array(["conflict", "not_found", "ok"], dtype=object)  # RewardStatus + 1
FEEDBACK_WAIT_S = 5.0  # a reward waits this long at most for its decision's own group commit


def split_decision_id(decision_id: str) -> tuple[str, int]:
    """(batch id, row) of a decision id; 422 naming ``decision_id`` when it is malformed."""
    match = DECISION_ID.match(decision_id) if isinstance(decision_id, str) else None
    if match is None:
        raise InvalidRequest(
            "decision_id must look like '<16 hex>-<row>' as returned by a decision",
            field="decision_id",
        )
    return match[1], int(match[2])


class Rewards:
    """Records rewards for one router's decisions and statistics (its store, layout and
    state key); ``on_learned`` runs when a reward changed the shared statistics."""

    def __init__(
        self,
        settings: BanditSettings,
        *,
        arms: tuple[str, ...],
        layout: Layout,
        store: StateStore,
        state_key: str,
        committer: GroupCommitter,
        on_learned: Callable[[], None],
    ) -> None:
        self.settings = settings
        self.arms = arms
        self.layout = layout
        self.store = store
        self.state_key = state_key
        self.committer = committer
        self.on_learned = on_learned

    async def feedback(
        self, decision_id: str, reward: float, *, now: float | None = None
    ) -> dict[str, object]:
        """``feedback_sync`` in a worker thread. An id not found is looked up once more after
        two flush intervals: the replica that decided it may not have committed it yet."""
        try:
            return await asyncio.to_thread(self.feedback_sync, decision_id, reward, now=now)
        except DecisionNotFound:
            await asyncio.sleep(2 * self.settings.flush_interval_s)
            return await asyncio.to_thread(self.feedback_sync, decision_id, reward, now=now)

    def feedback_sync(
        self, decision_id: str, reward: float, *, now: float | None = None
    ) -> dict[str, object]:
        """Record one reward; 404 unknown/expired, 409 second reward, 422 malformed."""
        split_decision_id(decision_id)
        try:
            value = float(reward)
        except (TypeError, ValueError):
            raise InvalidRequest("reward must be a number", field="reward") from None
        self._check_reward(np.array([value]))
        status, pend, update = self._record([decision_id], np.array([value]), now)
        if status[0] == RewardStatus.UNKNOWN_DECISION:
            raise DecisionNotFound(
                f"unknown or expired decision id {decision_id!r}", field="decision_id"
            )
        if status[0] == RewardStatus.ALREADY_REWARDED:
            raise Conflict(f"decision {decision_id!r} already has a reward", field="decision_id")
        arm = int(pend.arm[0])
        return {
            "decision_id": decision_id,
            "reward": value,
            "action": self.arms[arm] if arm < len(self.arms) else None,
            "reason": REASONS[int(pend.reason[0])],
            "policy_updated": bool(update[0]),
        }

    def feedback_many(
        self, decision_ids: Sequence[str], rewards: np.ndarray, *, now: float | None = None
    ) -> np.ndarray:
        """Batch rewards (simulation, bulk import): status per id, "ok" | "not_found" |
        "conflict" | "invalid"."""
        r = np.asarray(rewards, dtype=np.float64).reshape(-1)
        if len(r) != len(decision_ids):
            raise InvalidRequest("one reward per decision id", field="reward")
        valid = np.array(
            [isinstance(d, str) and bool(DECISION_ID.match(d)) for d in decision_ids], dtype=bool
        )
        valid &= self._reward_ok(r)
        out = np.full(len(r), "invalid", dtype=object)
        idx = np.flatnonzero(valid)
        if len(idx):
            status, _, _ = self._record([decision_ids[i] for i in idx.tolist()], r[idx], now)
            out[idx] = STATUS_NAMES[status.astype(np.int64) + 1]
        return out

    def _reward_ok(self, r: np.ndarray) -> np.ndarray:
        ok = np.isfinite(r)
        if self.settings.policy == "thompson":
            ok &= (r >= 0) & (r <= 1)
        return ok

    def _check_reward(self, r: np.ndarray) -> None:
        if not self._reward_ok(r).all():
            rng = (
                " in [0, 1] (Beta-Bernoulli Thompson sampling)"
                if self.settings.policy == "thompson"
                else ""
            )
            raise InvalidRequest(f"reward must be a finite number{rng}", field="reward")

    def _record(
        self, decision_ids: Sequence[str], rewards: np.ndarray, now: float | None
    ) -> tuple[np.ndarray, Pending, np.ndarray]:
        """Status per id, the decisions found, and which rows updated the statistics."""
        now = time.time() if now is None else float(now)
        parts = [split_decision_id(d) for d in decision_ids]
        bids = [p[0] for p in parts]
        rows = np.array([p[1] for p in parts], dtype=np.int64)
        if not self.committer.wait_for(bids, FEEDBACK_WAIT_S):
            raise DependencyUnavailable(
                "bandit state: the decision is not written yet (state store slow or down)"
            )
        pend = self.store.pending(bids, rows, self.layout.dim)
        live = pend.found & (pend.arm >= 0) & (pend.t + self.settings.reward_window_s >= now)
        update = (
            live & (pend.reason == Reason.POLICY) & pend.dim_ok & (pend.arm < self.layout.n_arms)
        )
        status = np.full(len(bids), RewardStatus.UNKNOWN_DECISION, dtype=np.int8)
        sel = np.flatnonzero(live)
        if len(sel):
            status[sel] = self.store.record_rewards(
                self._update(bids, rows, rewards, now, pend, sel, update)
            )
        if (status == RewardStatus.RECORDED).any():
            self.on_learned()
        return status, pend, update & (status == RewardStatus.RECORDED)

    def _update(
        self,
        bids: list[str],
        rows: np.ndarray,
        rewards: np.ndarray,
        now: float,
        pend: Pending,
        sel: np.ndarray,
        update: np.ndarray,
    ) -> RewardUpdate:
        """The store's reward write for the live rows ``sel``."""
        return RewardUpdate(
            self.state_key,
            (self.layout.n_arms, self.layout.width),
            self.settings.discount,
            [bids[i] for i in sel],
            rows[sel],
            rewards[sel],
            now,
            row_increments(self.layout, pend.context[sel], rewards[sel]),
            np.maximum(pend.arm[sel], 0),
            update[sel],
        )
