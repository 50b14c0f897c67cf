"""What the bandit service answers across its boundary: a recorded reward and an erasure's
counts. Plain frozen values, apart from the service, so the protocols (``components.api``)
and the planes name them without importing the service and its router.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Feedback:
    """A reward as recorded, and what it was for (``protocol.v1.FeedbackResponse``)."""

    decision_id: str
    reward: float
    action: str | None  # the action the decision took
    reason: str  # why that action was taken (``bandit.state.records.REASONS``)
    policy_updated: bool  # false where the policy does not learn from it (holdout, caps...)

    @classmethod
    def of(cls, recorded: Mapping[str, Any]) -> Feedback:
        """From ``BanditRouter.feedback``'s record."""
        action = recorded["action"]
        return cls(
            decision_id=str(recorded["decision_id"]),
            reward=float(recorded["reward"]),
            action=None if action is None else str(action),
            reason=str(recorded["reason"]),
            policy_updated=bool(recorded["policy_updated"]),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "decision_id": self.decision_id,
            "reward": self.reward,
            "action": self.action,
            "reason": self.reason,
            "policy_updated": self.policy_updated,
        }


@dataclass(frozen=True, slots=True)
class LogErasure:
    """What an erasure did to the decision log and the state beside it
    (``BanditRouter.erase``); crosses a handle in the split topology, so plain values."""

    decision_rows: int  # made unlinkable (``records.tombstone``), never deleted
    rewards: int  # rewards deleted
    contacts: int  # contact-ledger entries deleted

    @classmethod
    def of(cls, done: Mapping[str, int]) -> LogErasure:
        """From ``BanditRouter.erase``'s counts."""
        return cls(int(done["decision_rows"]), int(done["rewards"]), int(done["contacts"]))
