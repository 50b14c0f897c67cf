"""How long the decision log keeps what it holds: the retention trim any replica runs
(idempotent), and where records the store refuses for good are written."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from serving.bandit.state import Retention, StateStore, Trimmed
from serving.settings import BanditSettings

log = logging.getLogger("reengage.bandit")


def trim_log(store: StateStore, settings: BanditSettings, now: float | None = None) -> Trimmed:
    """Apply the retention settings to the shared log: by time (never inside a reward
    window), then by size; says when the size cap cannot be met."""
    s, now = settings, time.time() if now is None else now
    max_bytes = None if s.log_max_mb is None else int(s.log_max_mb * 2**20)
    done = store.trim(
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


def dead_letter_path(settings: BanditSettings) -> Path | None:
    """``bandit.dead_letter_file`` (``Settings`` fills it), else beside the embedded state."""
    if settings.dead_letter_file is not None:
        return Path(settings.dead_letter_file)
    return (
        Path(settings.state_path) / "dead_letters.jsonl"
        if settings.state_path is not None
        else None
    )
