"""The bandit router: one vectorized decision per batch, rewards from any replica.

Plain Python (no Ray): the serving layer wraps it in a deployment. A ``decide`` call of N
rows is one policy evaluation over an (N, d) context matrix and one categorical draw on
the in-memory statistics; its record (and the contact reservation of the rows that reach
a customer) goes to the router's ``GroupCommitter``, which writes it off the event loop
(see ``serving.bandit.state.committer`` for the flush policy, the queue bound, why caps
stay exact and what a crash loses). Decision ids are ``<batch>-<row>``, so the log keeps
one record per batch and a reward finds its row by offset.

``decide`` and ``feedback`` are coroutines for the serving path; ``decide_sync``,
``feedback_sync`` and ``feedback_many`` block, for offline callers (simulation, OPE,
benchmarks, tests).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future

import numpy as np

from serving.bandit.context import ContextBuilder, opted_out_mask, validate_batch
from serving.bandit.decisions import HOLDOUT, NOT_FOUND, OPTED_OUT, POLICY, Decisions
from serving.bandit.holdout import contact_reservation, holdout_mask, holdout_one
from serving.bandit.policies import Layout, Policy, sample_actions, sample_one
from serving.bandit.retention import dead_letter_path, trim_log
from serving.bandit.rewards import FEEDBACK_WAIT_S, Rewards
from serving.bandit.state import (
    BatchRecord,
    GroupCommitter,
    Reservation,
    StateStore,
    Trimmed,
    Waiter,
    open_store,
)
from serving.bandit.state.deadletter import DeadLetters
from serving.privacy.pseudonym import pseudonyms
from serving.settings import BanditSettings

# what callers import from here: the answer type and the holdout (one hash, serving.hashing)
__all__ = ["BanditRouter", "Decisions", "holdout_mask", "holdout_one", "state_fingerprint"]

log = logging.getLogger("reengage.bandit")


def state_fingerprint(settings: BanditSettings) -> str:
    """State is keyed by arms and context layout: changing either starts fresh statistics."""
    spec = "|".join(settings.arms) + "#" + "|".join(settings.context_features)
    return hashlib.sha1(spec.encode()).hexdigest()[:10]


class BanditRouter:
    """Decides actions for batches of customers and learns from rewards (shared state)."""

    def __init__(
        self,
        settings: BanditSettings,
        *,
        store: StateStore | None = None,
        pseudonym_key: bytes | None = None,
    ) -> None:
        self.settings = settings
        # the decision log holds keyed pseudonyms (serving.privacy)
        self.pseudonym_key = pseudonym_key
        self.arms = tuple(settings.arms)
        self.context_names = tuple(settings.context_features)
        self.layout = Layout(len(self.arms), len(self.context_names))
        self.context = ContextBuilder(self.context_names)
        self.policy = Policy(
            settings.policy,
            self.layout,
            epsilon=settings.epsilon,
            alpha=settings.alpha,
            ridge=settings.ridge,
            samples=settings.ts_samples,
        )
        self.store = store if store is not None else open_store(settings)
        self.fingerprint = state_fingerprint(settings)
        self.state_key = f":state:{self.fingerprint}"
        self.control = (
            self.arms.index(settings.control_arm) if settings.control_arm in self.arms else -1
        )
        self._rng = np.random.default_rng(settings.seed)
        self._lock = threading.Lock()
        self._version, self._stats = -1, self.layout.zeros()
        self._checked = -np.inf
        self._next_trim = 0.0  # the first housekeeping turn trims
        self.sync(force=True)
        self.committer = GroupCommitter(
            self.store,
            flush_interval_s=settings.flush_interval_s,
            queue_rows=settings.log_queue_rows,
            flush_rows=settings.flush_rows,
            ttl_s=settings.reward_window_s,
            refresh=self._housekeeping,
            refresh_interval_s=settings.sync_interval_s,
            name=settings.name,
            max_tries=settings.dead_letter_tries,
            dead_letters=DeadLetters(
                dead_letter_path(settings), settings.dead_letter_rotation, settings.name
            ),
        )
        self.rewards = Rewards(
            settings,
            arms=self.arms,
            layout=self.layout,
            store=self.store,
            state_key=self.state_key,
            committer=self.committer,
            on_learned=self._learned,
        )

    # ------------------------------------------------------------------ state sync
    @property
    def policy_version(self) -> str:
        return f"{self.settings.policy}:{self.fingerprint}:{self._version}"

    @property
    def stats(self) -> np.ndarray:
        """(K, m) statistics this replica currently decides with."""
        return self._stats

    def sync(self, *, force: bool = False) -> bool:
        """Pick up state learned by any replica, at most every ``sync_interval_s`` unless forced.
        Offline callers call it; in serving the committer thread refreshes on that period."""
        mono = time.monotonic()
        if not force and mono - self._checked < self.settings.sync_interval_s:
            return False
        self._checked = mono
        return self._refresh(force=force)

    def _refresh(self, *, force: bool = False) -> bool:
        """A version check, a read only on change; decisions then use the new snapshot."""
        if not force and self.store.state_version(self.state_key) == self._version:
            return False
        version, stats = self.store.read_state(
            self.state_key, (self.layout.n_arms, self.layout.width)
        )
        with self._lock:
            self._version, self._stats = version, stats
        return True

    @property
    def healthy(self) -> bool:
        """The writer thread runs and its latest commit and statistics read succeeded."""
        return self.committer.healthy

    def _housekeeping(self) -> None:
        """The committer thread's periodic turn: pick up shared statistics, trim when due."""
        self._refresh()
        if time.time() >= self._next_trim:
            self._next_trim = time.time() + self.settings.trim_interval_s
            try:
                self.trim()
            except Exception as exc:  # retention is best effort: the next turn retries
                log.warning("bandit decision-log trim failed: %s", exc)

    def trim(self, now: float | None = None) -> Trimmed:
        """Apply the retention settings to the shared log (any replica may; it is idempotent)."""
        return trim_log(self.store, self.settings, now)

    # ------------------------------------------------------------------ context
    def build_context(
        self,
        features: np.ndarray,
        feature_names: Sequence[str],
        churn: np.ndarray,
        engagement: np.ndarray,
    ) -> np.ndarray:
        """(N, d) float32 context in ``context_features`` order, NaN as 0 (``ContextBuilder``)."""
        return self.context.build(features, feature_names, churn, engagement)

    def check_feature_names(self, feature_names: Sequence[str]) -> None:
        """Fail fast (at replica start) when ``context_features`` names a feature not served."""
        self.context.check_feature_names(feature_names)

    # ------------------------------------------------------------------ decide
    async def decide(
        self,
        customer_ids: np.ndarray,
        context: np.ndarray,
        *,
        eligible: np.ndarray,
        model_versions: dict[str, str],
        feature_digest: np.ndarray | None = None,
        feature_ts: np.ndarray | None = None,
        now: float | None = None,
        opted_out: np.ndarray | None = None,
    ) -> Decisions:
        """Actions for N customers, for the event loop: no store call here. Only a batch with
        rows that contact a customer awaits its reservation (the committer's next group).
        ``opted_out`` rows get the control arm, reason ``opted_out``, propensity 1."""
        record, waiter = self._submit(
            customer_ids,
            context,
            eligible,
            model_versions,
            feature_digest,
            feature_ts,
            now,
            asyncio.get_running_loop(),
            opted_out,
        )
        if isinstance(waiter, asyncio.Future):
            await waiter
        return self._answer(record)

    def decide_sync(
        self,
        customer_ids: np.ndarray,
        context: np.ndarray,
        *,
        eligible: np.ndarray,
        model_versions: dict[str, str],
        feature_digest: np.ndarray | None = None,
        feature_ts: np.ndarray | None = None,
        now: float | None = None,
        opted_out: np.ndarray | None = None,
    ) -> Decisions:
        """``decide`` for offline callers: re-reads the statistics first (``sync``), so a loop
        of decide / feedback learns round by round, and blocks on the reservation."""
        self.sync()
        record, waiter = self._submit(
            customer_ids,
            context,
            eligible,
            model_versions,
            feature_digest,
            feature_ts,
            now,
            None,
            opted_out,
        )
        if isinstance(waiter, Future):
            waiter.result()
        return self._answer(record)

    def _submit(
        self,
        customer_ids: np.ndarray,
        context: np.ndarray,
        eligible: np.ndarray,
        model_versions: dict[str, str],
        feature_digest: np.ndarray | None,
        feature_ts: np.ndarray | None,
        now: float | None,
        loop: asyncio.AbstractEventLoop | None = None,
        opted_out: np.ndarray | None = None,
    ) -> tuple[BatchRecord, Waiter | None]:
        """Consent, holdout, then the policy on this replica's snapshot; the record (before
        contact caps) goes to the committer with the reservation its contacting rows need."""
        now = time.time() if now is None else float(now)
        ids, x, ok = validate_batch(customer_ids, context, eligible, len(self.context_names))
        out = opted_out_mask(opted_out, len(ids))
        if out is not None and self.control < 0:
            raise ValueError(
                f"bandit.control_arm {self.settings.control_arm!r} is not among the arms: "
                "opted-out customers need a no-contact arm"
            )
        one = self._decide_one if len(ids) == 1 else self._decide_rows
        reason, arm, prop, version = one(ids, x, ok & ~out if out is not None else ok)
        if out is not None:  # withdrawn consent outranks everything, found or not
            reason[out], arm[out], prop[out] = OPTED_OUT, self.control, 1.0
        rec = BatchRecord(
            secrets.token_hex(8),
            now,
            self.settings.policy,
            version,
            dict(model_versions),
            self.arms,
            self.context_names,
            ids,
            x,
            arm,
            prop,
            reason,
            feature_digest,
            feature_ts,
            pseudonym_key=self.pseudonym_key,
            eligible=ok,
        )
        return rec, self.committer.submit(rec, self._reservation(rec), loop=loop)

    def _decide_rows(
        self, ids: np.ndarray, x: np.ndarray, ok: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
        """(reason, arm, propensity, policy version) per row: holdout, then one policy
        evaluation and one categorical draw over the rows left."""
        reason = np.where(ok, POLICY, NOT_FOUND).astype(np.uint8)
        reason[ok & holdout_mask(ids, self.settings.holdout_share, self.settings.holdout_salt)] = (
            HOLDOUT
        )
        arm = np.full(len(ids), -1, dtype=np.int16)
        prop = np.full(len(ids), np.nan)
        pol = reason == POLICY
        with self._lock:
            version = self.policy_version
            arm[pol], prop[pol] = sample_actions(
                self.policy.probabilities(x[pol], self._stats, self._rng), self._rng
            )
        held = reason == HOLDOUT
        arm[held], prop[held] = self.control, 1.0
        return reason, arm, prop, version

    def _decide_one(
        self, ids: np.ndarray, x: np.ndarray, ok: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
        """``_decide_rows`` for a single customer, in scalars: the same holdout hash, policy and
        draw (tests check both paths agree row for row), without numpy's fixed cost per call on
        one-element arrays, which was most of a single-customer decision's CPU."""
        s = self.settings
        code, arm, prop = NOT_FOUND, -1, float("nan")
        with self._lock:
            version = self.policy_version
            if ok[0] and holdout_one(int(ids[0]), s.holdout_share, s.holdout_salt):
                code, arm, prop = HOLDOUT, self.control, 1.0
            elif ok[0]:
                code = POLICY
                arm, prop = sample_one(
                    self.policy.probabilities(x, self._stats, self._rng)[0], self._rng
                )
        return np.array([code], np.uint8), np.array([arm], np.int16), np.array([prop]), version

    def _reservation(self, rec: BatchRecord) -> Reservation | None:
        """The contact cap's reservation of the rows that contact a customer (``holdout``)."""
        s = self.settings
        return contact_reservation(
            rec, cap=s.contact_cap, window_s=s.contact_window_s, control=self.control
        )

    def _answer(self, rec: BatchRecord) -> Decisions:
        return Decisions(
            rec.arm_index.astype(np.int64),
            rec.propensity.copy(),
            rec.reason.astype(np.uint8),
            self.arms,
            rec.policy_version,
            rec.batch_id,
        )

    # ------------------------------------------------------------------ feedback
    async def feedback(
        self, decision_id: str, reward: float, *, now: float | None = None
    ) -> dict[str, object]:
        """One reward from the event loop (``Rewards.feedback``)."""
        return await self.rewards.feedback(decision_id, reward, now=now)

    def feedback_sync(
        self, decision_id: str, reward: float, *, now: float | None = None
    ) -> dict[str, object]:
        """Record one reward; 404 unknown/expired, 409 second reward, 422 malformed."""
        return self.rewards.feedback_sync(decision_id, reward, now=now)

    def feedback_many(
        self, decision_ids: Sequence[str], rewards: np.ndarray, *, now: float | None = None
    ) -> np.ndarray:
        """Batch rewards: status per id, "ok" | "not_found" | "conflict" | "invalid"."""
        return self.rewards.feedback_many(decision_ids, rewards, now=now)

    def _learned(self) -> None:
        """A reward changed the shared statistics: this replica's own reward counts at once
        (offline ``sync`` re-reads, the committer thread refreshes the serving snapshot)."""
        self._checked = -np.inf
        self.committer.refresh_soon()

    # ------------------------------------------------------------------ erasure
    def erase(self, customer_id: int) -> dict[str, int]:
        """Every decision-log row of the customer made unlinkable (``records.tombstone``), its
        rewards and contact times deleted. Decisions still queued are written first."""
        self.flush(FEEDBACK_WAIT_S)
        pseudonym = (
            int(pseudonyms(np.array([customer_id], np.int64), self.pseudonym_key)[0])
            if self.pseudonym_key is not None
            else int(customer_id)
        )
        return self.store.erase(int(customer_id), pseudonym)

    # ------------------------------------------------------------------ lifecycle
    def flush(self, timeout_s: float | None = None) -> bool:
        """Commit every decision made so far (tests, offline readers of the log)."""
        return self.committer.flush(timeout_s)

    def close(self, timeout_s: float = 10.0) -> None:
        """Graceful stop: commit every queued decision, then release the store."""
        self.committer.close(timeout_s)
        self.store.close()

    async def aclose(self, timeout_s: float = 10.0) -> None:
        """``close`` from the event loop, which keeps serving while the queue drains."""
        await asyncio.to_thread(self.close, timeout_s)
