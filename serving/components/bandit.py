"""The bandit as a service: decisions for a scored batch, rewards, and what the decision
log says of each model version (a rollout's evidence).

State and the decision log live in the router's store (sqlite file or Redis), so every
replica holding one of these learns from every other's rewards.
"""

from __future__ import annotations

import asyncio
import functools
from typing import TYPE_CHECKING

import numpy as np

from feature_store.batch import FeatureBatch
from serving import metrics
from serving.bandit.router import BanditRouter, Decisions
from serving.bandit.state import open_store
from serving.bandit.state.records import REASONS
from serving.components.bandit_answers import Feedback, LogErasure
from serving.components.evidence import LogStats
from serving.components.evidence_index import EvidenceIndex
from serving.settings import BanditSettings


class BanditService:
    """The bandit router behind async methods; counts its decisions and rewards."""

    def __init__(self, settings: BanditSettings, pseudonym_key: bytes | None = None) -> None:
        """``pseudonym_key``: the decision log holds keyed pseudonyms, not customer ids."""
        self.router = BanditRouter(settings, pseudonym_key=pseudonym_key)
        # the evidence's running sums read the log through a store of their own, so an
        # admin's status call never waits on the decision path's connection
        self._index = EvidenceIndex(lambda: open_store(settings), settings.reward_window_s)

    async def decide(
        self,
        customer_ids: np.ndarray,
        batch: FeatureBatch,
        churn: np.ndarray,
        engagement: np.ndarray,
        found: np.ndarray,
        model_versions: dict[str, str],
        opted_out: np.ndarray | None = None,
    ) -> Decisions:
        context = self.router.build_context(batch.values, batch.names, churn, engagement)
        decisions = await self.router.decide(
            customer_ids,
            context,
            eligible=found,
            model_versions=model_versions,
            feature_digest=row_digest(batch.values),
            feature_ts=batch.event_ts,
            opted_out=opted_out,
        )
        metrics.decisions(decisions.arm_index, decisions.reason_code, decisions.arms, REASONS)
        return decisions

    async def feedback(self, decision_id: str, reward: float) -> Feedback:
        result = Feedback.of(await self.router.feedback(decision_id, reward))
        metrics.reward(result.action)
        return result

    async def erase(self, customer_id: int) -> LogErasure:
        """Tombstone the customer's logged decisions, delete its rewards and contact times."""
        return LogErasure.of(await asyncio.to_thread(self.router.erase, customer_id))

    async def evidence(self, model: str, since: float) -> LogStats:
        """Each version of ``model`` (its role: ``churn``, ``engagement``) and its resolved
        decisions since ``since``, from running sums (``components.evidence_index``): a
        call reads what the log gained since the last one, not the whole log."""
        try:
            return LogStats(await asyncio.to_thread(self._index.refresh, model, since))
        except Exception as exc:  # evidence is advice: a store outage is said, not raised
            return LogStats(error=f"{type(exc).__name__}: {exc}")

    async def ready(self) -> bool:
        """False while the state store fails writes or reads (the committer's last attempts)."""
        return self.router.healthy

    async def close(self) -> None:
        """Graceful stop: commit every queued decision-log record, then release the state."""
        await self.router.aclose()
        await asyncio.to_thread(self._index.close)


def row_digest(values: np.ndarray) -> np.ndarray:
    """A 64-bit digest per row of a float32 matrix (replay check), vectorized: the rows'
    bit patterns folded by a fixed odd multiplier per column."""
    bits = np.ascontiguousarray(values, dtype=np.float32).view(np.uint32).astype(np.uint64)
    digest: np.ndarray = (bits * _digest_weights(bits.shape[1])).sum(axis=1, dtype=np.uint64)
    return digest  # uint64 products and sums wrap silently: a digest, not a count


@functools.lru_cache(maxsize=8)
def _digest_weights(width: int) -> np.ndarray:
    return (np.arange(1, width + 1, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)) | np.uint64(1)


if TYPE_CHECKING:  # mypy holds the service to the protocol the dataplane calls it through
    from serving.components.api import Bandit

    _bandit: type[Bandit] = BanditService
