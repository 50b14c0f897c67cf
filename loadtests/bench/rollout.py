"""Rollout evidence latency against the decision log's size: ``reengage bench rollout``.

Fills a real bandit store (sqlite, or Redis with ``--redis-url``) with N logged decisions
of a canary (default v1, candidate v2 at 20 percent, row tokens as the dataplane writes
them, a reward for one decision in ten), then times what status and promote do with the
evidence: ``EvidenceIndex.refresh`` plus the gate's comparison. ``cold``: the first look
of a process (it reads the rollout once); ``warm``: a look after 1,000 more decisions and
100 more rewards, the steady state of an operator polling ``rollout status``. For
context, ``full read`` times reading the whole log once (what every call cost before).
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from serving.bandit.ope import load_log
from serving.bandit.state import BatchRecord, Group, RewardUpdate, SqliteStore, StateStore
from serving.components.evidence import compare
from serving.components.evidence_index import EvidenceIndex
from serving.components.traffic_policy import TrafficPolicy, row_token
from serving.settings import BanditSettings, TrafficPolicyConfig

POLICY = TrafficPolicy.build(
    "churn",
    TrafficPolicyConfig.model_validate(
        {"default": "1", "salt": "bench", "candidates": [{"version": "2", "weight": 20}]}
    ),
    "1",
)
BATCH = 1_000


def _log(
    store: StateStore, rng: np.random.Generator, decisions: int, t0: float, span_s: float = 1.0
) -> None:
    """``decisions`` rows in batches of 1,000 spread over ``span_s`` after ``t0``, one in
    ten rewarded 30 s after its decision."""
    for start in range(0, decisions, 50 * BATCH):
        recs = []
        for b in range(start, min(start + 50 * BATCH, decisions), BATCH):
            ids = rng.integers(0, 10**9, BATCH)
            codes, versions = POLICY.assign(ids)
            recs.append(
                BatchRecord(
                    rng.bytes(8).hex(),
                    t0 + span_s * b / decisions,
                    "thompson",
                    "1",
                    {"churn": "1,2", "rollout.churn": row_token(codes.astype(np.int64), versions)},
                    ("a", "b"),
                    ("x",),
                    ids,
                    np.zeros((BATCH, 1), np.float32),
                    rng.integers(0, 2, BATCH).astype(np.int16),
                    np.full(BATCH, 0.5),
                    np.zeros(BATCH, np.uint8),
                )
            )
        store.commit(Group(recs))
        for rec in recs:
            rows = np.flatnonzero(rng.random(BATCH) < 0.1)
            n = len(rows)
            store.record_rewards(
                RewardUpdate(
                    "k",
                    (2, 1),
                    1.0,
                    [rec.batch_id] * n,
                    rows,
                    rng.random(n).round(),
                    rec.t + 30,
                    np.zeros((n, 1)),
                    np.zeros(n, np.int64),
                    np.zeros(n, bool),
                )
            )


def _timed(fn: Any) -> float:
    start = time.perf_counter()
    fn()
    return 1e3 * (time.perf_counter() - start)


def run(
    decisions: int, *, rounds: int = 5, redis_url: str | None = None, seed: int = 0
) -> dict[str, Any]:
    """Cold, warm and full-read timings (ms) for a log of ``decisions``."""
    rng = np.random.default_rng(seed)
    with tempfile.TemporaryDirectory() as tmp:
        settings = BanditSettings.model_validate(
            {
                "name": f"bench{seed}",
                "state_path": tmp,
                "backend": "redis" if redis_url else "embedded",
                **({"redis_url": redis_url} if redis_url else {}),
            }
        )
        from serving.bandit.state import open_store

        store = (
            open_store(settings)
            if redis_url
            else SqliteStore(Path(tmp) / f"{settings.name}.sqlite")
        )
        t0 = time.time() - 86_400  # a day of decisions
        build = _timed(lambda: _log(store, rng, decisions, t0, 86_000))

        def look(index: EvidenceIndex) -> None:
            compare(index.refresh("churn", t0), "1", "2")

        cold, warm = [], []
        for _ in range(rounds):
            index = EvidenceIndex(lambda: open_store(settings), settings.reward_window_s)
            cold.append(_timed(lambda: look(index)))
            _log(store, rng, BATCH, time.time() - 1)
            warm.append(_timed(lambda: look(index)))
            index.close()
        full = _timed(lambda: load_log(settings))
        store.close()
    return {
        "decisions": decisions,
        "backend": settings.backend,
        "build_s": round(build / 1e3, 2),
        "cold_ms": round(statistics.median(cold), 1),
        "warm_ms": round(statistics.median(warm), 2),
        "full_read_ms": round(full, 1),
        "rounds": rounds,
    }
