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
import functools
import hashlib
import logging
import re
import secrets
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from serving.bandit.policies import Layout, Policy, row_increments, sample_actions, sample_one
from serving.bandit.state import (
    REASONS,
    BatchRecord,
    GroupCommitter,
    Pending,
    Reason,
    Reservation,
    Retention,
    RewardStatus,
    RewardUpdate,
    StateStore,
    Trimmed,
    Waiter,
    open_store,
)
from serving.bandit.state.deadletter import DeadLetters
from serving.errors import Conflict, DecisionNotFound, DependencyUnavailable, InvalidRequest
from serving.hashing import salted_hash, salted_hash_one
from serving.privacy.pseudonym import pseudonyms
from serving.settings import BanditSettings

SCORE_COLUMNS = {"churn_probability": "churn", "engagement_probability": "engagement"}
_ID = re.compile(r"^([0-9a-f]{16})-(\d{1,7})$")
_REASON_NAMES = np.array(REASONS, dtype=object)
_STATUS_NAMES = np.array(["conflict", "not_found", "ok"], dtype=object)  # RewardStatus + 1
# plain ints for the per-request numpy work: numpy handles IntEnum members ~3x slower
_POLICY, _HOLDOUT, _NOT_FOUND = int(Reason.POLICY), int(Reason.HOLDOUT), int(Reason.NOT_FOUND)
_OPTED_OUT = int(Reason.OPTED_OUT)
log = logging.getLogger("reengage.bandit")
FEEDBACK_WAIT_S = 5.0  # a reward waits this long at most for its decision's own group commit


@dataclass
class Decisions:
    """Per-row results in request order, as codes: the answer is encoded from these
    without a Python object per row (``serving.codecs.columnar``)."""

    arm_index: np.ndarray  # int64 index into ``arms``, -1: no decision
    propensity: np.ndarray  # float64, NaN: no decision
    reason_code: np.ndarray  # uint8 index into REASONS
    arms: tuple[str, ...]
    policy_version: str
    batch_id: str

    def __len__(self) -> int:
        return int(len(self.arm_index))

    @property
    def has_decision(self) -> np.ndarray:
        return self.arm_index >= 0

    @property
    def action(self) -> np.ndarray:
        """Object array of arm names (None: no decision), for offline callers and tests."""
        return np.array(self.arms + (None,), dtype=object)[self.arm_index]

    @property
    def reason(self) -> np.ndarray:
        return _REASON_NAMES[self.reason_code]

    @property
    def decision_id(self) -> np.ndarray:
        """``<batch>-<row>`` per row with a decision, None elsewhere."""
        ids = np.full(len(self), None, dtype=object)
        rows = np.flatnonzero(self.has_decision)
        ids[rows] = np.strings.add(self.batch_id + "-", rows.astype(np.str_)).astype(object)
        return ids


def holdout_mask(customer_ids: np.ndarray, share: float, salt: str) -> np.ndarray:
    """Stable per-customer holdout: the salted hash (``serving.hashing``) mapped to [0, 1)
    below ``share``."""
    if share <= 0:
        return np.zeros(len(customer_ids), bool)
    return (salted_hash(customer_ids, salt) >> _U11).astype(np.float64) / float(1 << 53) < share


def holdout_one(customer_id: int, share: float, salt: str) -> bool:
    """``holdout_mask`` of one id in Python ints: the same hash and the same answer."""
    if share <= 0:
        return False
    return (salted_hash_one(customer_id, salt) >> 11) / float(1 << 53) < share


_U11 = np.uint64(11)


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
        self.pseudonym_key = (
            pseudonym_key  # the decision log holds keyed pseudonyms (serving.privacy)
        )
        self.arms = tuple(settings.arms)
        self.context_names = tuple(settings.context_features)
        self.layout = Layout(len(self.arms), len(self.context_names))
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
                _dead_letter_path(settings), settings.dead_letter_rotation, settings.name
            ),
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
        s, now = self.settings, time.time() if now is None else now
        max_bytes = None if s.log_max_mb is None else int(s.log_max_mb * 2**20)
        done = self.store.trim(
            Retention(
                now - s.log_retention_s,
                now - s.reward_window_s,
                max_bytes,
                now - s.contact_window_s,
            )
        )
        if done.over_size:
            log.warning(
                "bandit decision log holds %.0f MB, over bandit.log_max_mb, and every decision left "
                "is inside its reward window: raise the cap or shorten the window",
                done.bytes_after / 2**20,
            )
        elif done.decisions:
            log.info(
                "bandit decision log trimmed: %d decisions, %.1f -> %.1f MB",
                done.decisions,
                done.bytes_before / 2**20,
                done.bytes_after / 2**20,
            )
        return done

    # ------------------------------------------------------------------ context
    def build_context(
        self,
        features: np.ndarray,
        feature_names: Sequence[str],
        churn: np.ndarray,
        engagement: np.ndarray,
    ) -> np.ndarray:
        """(N, d) float32 context in ``context_features`` order, NaN as 0: one column per
        context feature is copied, never the whole feature matrix."""
        sources = self._context_sources(tuple(feature_names))
        scores = {"churn": churn, "engagement": engagement}
        out = np.empty((len(churn), len(self.context_names)), dtype=np.float32)
        for j, src in enumerate(sources):  # d columns (2 by default), not rows
            out[:, j] = features[:, src] if isinstance(src, int) else scores[src]
        if not np.isfinite(out).all():  # the common case skips nan_to_num's fixed cost
            np.nan_to_num(out, copy=False, nan=0.0)
        return out

    @functools.lru_cache(maxsize=8)  # noqa: B019 (one router per process, a handful of layouts)
    def _context_sources(self, feature_names: tuple[str, ...]) -> tuple[int | str, ...]:
        """Per context column, the feature's column index or the score it is ("churn"...)."""
        self.check_feature_names(feature_names)
        index = {n: i for i, n in enumerate(feature_names)}
        return tuple(index[c] if c in index else SCORE_COLUMNS[c] for c in self.context_names)

    def check_feature_names(self, feature_names: Sequence[str]) -> None:
        """Fail fast (at replica start) when ``context_features`` names a feature not served:
        a configuration error, not the caller's, so a ValueError rather than a 4xx."""
        missing = [
            c for c in self.context_names if c not in feature_names and c not in SCORE_COLUMNS
        ]
        if missing:
            raise ValueError(
                f"bandit.context_features {missing} are not among the features read "
                f"({list(feature_names)}) nor the scores {list(SCORE_COLUMNS)}"
            )

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
        ids, x, ok = self._validate(customer_ids, context, eligible)
        out = self._opted_out(opted_out, len(ids))
        one = self._decide_one if len(ids) == 1 else self._decide_rows
        reason, arm, prop, version = one(ids, x, ok & ~out if out is not None else ok)
        if out is not None:  # withdrawn consent outranks everything, found or not
            reason[out], arm[out], prop[out] = _OPTED_OUT, self.control, 1.0
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
        )
        return rec, self.committer.submit(rec, self._reservation(rec), loop=loop)

    def _opted_out(self, opted_out: np.ndarray | None, n: int) -> np.ndarray | None:
        """The opted-out mask, None when no row is (the common case costs one ``any``)."""
        if opted_out is None:
            return None
        out = np.asarray(opted_out, dtype=bool).reshape(-1)
        if out.shape != (n,):
            raise InvalidRequest(f"opted_out must be ({n},), got {out.shape}", field="opted_out")
        if not out.any():
            return None
        if self.control < 0:
            raise ValueError(
                f"bandit.control_arm {self.settings.control_arm!r} is not among the arms: "
                "opted-out customers need a no-contact arm"
            )
        return out

    def _decide_rows(
        self, ids: np.ndarray, x: np.ndarray, ok: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
        """(reason, arm, propensity, policy version) per row: holdout, then one policy
        evaluation and one categorical draw over the rows left."""
        reason = np.where(ok, _POLICY, _NOT_FOUND).astype(np.uint8)
        reason[ok & holdout_mask(ids, self.settings.holdout_share, self.settings.holdout_salt)] = (
            _HOLDOUT
        )
        arm = np.full(len(ids), -1, dtype=np.int16)
        prop = np.full(len(ids), np.nan)
        pol = reason == _POLICY
        with self._lock:
            version = self.policy_version
            arm[pol], prop[pol] = sample_actions(
                self.policy.probabilities(x[pol], self._stats, self._rng), self._rng
            )
        held = reason == _HOLDOUT
        arm[held], prop[held] = self.control, 1.0
        return reason, arm, prop, version

    def _decide_one(
        self, ids: np.ndarray, x: np.ndarray, ok: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
        """``_decide_rows`` for a single customer, in scalars: the same holdout hash, policy and
        draw (tests check both paths agree row for row), without numpy's fixed cost per call on
        one-element arrays, which was most of a single-customer decision's CPU."""
        s = self.settings
        code, arm, prop = _NOT_FOUND, -1, float("nan")
        with self._lock:
            version = self.policy_version
            if ok[0] and holdout_one(int(ids[0]), s.holdout_share, s.holdout_salt):
                code, arm, prop = _HOLDOUT, self.control, 1.0
            elif ok[0]:
                code = _POLICY
                arm, prop = sample_one(
                    self.policy.probabilities(x, self._stats, self._rng)[0], self._rng
                )
        return np.array([code], np.uint8), np.array([arm], np.int16), np.array([prop]), version

    def _validate(
        self, customer_ids: np.ndarray, context: np.ndarray, eligible: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Owned copies: the record is written later, by another thread."""
        ids = np.array(customer_ids, dtype=np.int64).reshape(-1)
        x = np.array(context, dtype=np.float32)
        ok = np.asarray(eligible, dtype=bool).reshape(-1)
        if x.ndim != 2 or x.shape != (len(ids), len(self.context_names)):
            raise InvalidRequest(
                f"context must be (N={len(ids)}, d={len(self.context_names)}), got {x.shape}",
                field="context",
            )
        if ok.shape != ids.shape:
            raise InvalidRequest(
                f"eligible must be ({len(ids)},), got {ok.shape}", field="eligible"
            )
        return ids, x, ok

    def _reservation(self, rec: BatchRecord) -> Reservation | None:
        """Contacts beyond the cap per window become the control arm (reason ``contact_cap``);
        rows that contact nobody, or caps off, need no reservation and wait for nothing."""
        cap = self.settings.contact_cap
        if cap <= 0 or self.control < 0:
            return None
        if rec.n == 1:  # the single-customer path, without three numpy calls
            contacts = rec.reason[0] == _POLICY and rec.arm_index[0] != self.control
            rows = np.zeros(1 if contacts else 0, np.intp)
        else:
            rows = np.flatnonzero((rec.reason == _POLICY) & (rec.arm_index != self.control))
        return (
            Reservation(rec, rows, self.settings.contact_window_s, cap, self.control)
            if len(rows)
            else None
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
        if not isinstance(decision_id, str) or not _ID.match(decision_id):
            raise InvalidRequest(
                "decision_id must look like '<16 hex>-<row>' as returned by a decision",
                field="decision_id",
            )
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
        """Batch rewards (simulation, bulk import): status per id, "ok" | "not_found" | "conflict" | "invalid"."""
        r = np.asarray(rewards, dtype=np.float64).reshape(-1)
        if len(r) != len(decision_ids):
            raise InvalidRequest("one reward per decision id", field="reward")
        valid = np.array(
            [isinstance(d, str) and bool(_ID.match(d)) for d in decision_ids], dtype=bool
        )
        valid &= self._reward_ok(r)
        out = np.full(len(r), "invalid", dtype=object)
        idx = np.flatnonzero(valid)
        if len(idx):
            status, _, _ = self._record([decision_ids[i] for i in idx.tolist()], r[idx], now)
            out[idx] = _STATUS_NAMES[status.astype(np.int64) + 1]
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
        now = time.time() if now is None else float(now)
        parts = [_ID.match(d).groups() for d in decision_ids]  # type: ignore[union-attr]
        bids = [p[0] for p in parts]
        rows = np.array([int(p[1]) for p in parts], dtype=np.int64)
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
            inc = row_increments(self.layout, pend.context[sel], rewards[sel])
            status[sel] = self.store.record_rewards(
                RewardUpdate(
                    self.state_key,
                    (self.layout.n_arms, self.layout.width),
                    self.settings.discount,
                    [bids[i] for i in sel],
                    rows[sel],
                    rewards[sel],
                    now,
                    inc,
                    np.maximum(pend.arm[sel], 0),
                    update[sel],
                )
            )
        if (status == RewardStatus.RECORDED).any():
            self._checked = (
                -np.inf
            )  # this replica's own reward counts at once: offline sync re-reads,
            self.committer.refresh_soon()  # and the committer thread refreshes the serving snapshot
        return status, pend, update & (status == RewardStatus.RECORDED)

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


def _dead_letter_path(settings: BanditSettings) -> Path | None:
    """``bandit.dead_letter_file`` (``Settings`` fills it), else beside the embedded state."""
    if settings.dead_letter_file is not None:
        return Path(settings.dead_letter_file)
    return (
        Path(settings.state_path) / "dead_letters.jsonl"
        if settings.state_path is not None
        else None
    )
