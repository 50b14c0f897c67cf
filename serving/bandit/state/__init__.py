"""Shared bandit state and the durable decision log, behind one ``StateStore`` contract.

Modules: ``records`` (what is stored and its bytes), ``base`` (the contract and its
reference math), ``sqlite_store`` (embedded, one file shared by the processes of a
machine), ``redis_store`` (production, Lua scripts in ``lua/``), ``committer`` (the
background thread that writes decisions in groups, off the request's path).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from serving.bandit.state.base import (
    Group,
    Reservation,
    Retention,
    RewardUpdate,
    StateStore,
    Trimmed,
    discounted_update,
    group_positions,
)
from serving.bandit.state.committer import GroupCommitter
from serving.bandit.state.pending import Waiter
from serving.bandit.state.records import REASONS, BatchRecord, Pending, Reason, RewardStatus
from serving.bandit.state.redis_store import RedisStore
from serving.bandit.state.sqlite_store import SqliteStore


def open_store(settings: Any) -> StateStore:
    """The store a ``BanditSettings`` names (embedded file under ``state_path``, or Redis)."""
    if settings.backend == "redis":
        return RedisStore(settings.redis_url, settings.name, timeout_s=settings.timeout_s)
    root = (
        Path(settings.state_path)
        if settings.state_path is not None
        else Path.cwd() / "data" / "bandit"
    )
    return SqliteStore(root / f"{settings.name}.sqlite")


__all__ = [
    "REASONS",
    "BatchRecord",
    "Group",
    "GroupCommitter",
    "Pending",
    "Reason",
    "RedisStore",
    "Reservation",
    "Retention",
    "RewardStatus",
    "Trimmed",
    "RewardUpdate",
    "SqliteStore",
    "StateStore",
    "Waiter",
    "discounted_update",
    "group_positions",
    "open_store",
]
