"""The consent check's cost per /v1/score request: ``reengage bench consent``.

What a request pays is ``ConsentView.mask`` over its ids (the router then only reads the
mask). Measured for 1, 1,000 and 10,000 ids against nobody, 10,000 and 1,000,000 opted-out
customers, the request's ids absent from them and 1% among them; best of 7 rounds.
Figures: docs/benchmarks.md ("Consent check").
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from serving.privacy.consent import OptedOut


def _best(fn: Callable[[], object], reps: int) -> float:
    rounds = []
    for _ in range(7):
        start = time.perf_counter()
        for _ in range(reps):
            fn()
        rounds.append((time.perf_counter() - start) / reps)
    return min(rounds) * 1e6


def run(seed: int = 0) -> list[dict[str, float]]:
    rng = np.random.default_rng(seed)
    rows = []
    for opted in (0, 10_000, 1_000_000):
        held = np.sort(rng.choice(np.arange(10**6, 10**8), opted, replace=False)).astype(np.int64)
        for n in (1, 1_000, 10_000):
            ids = rng.choice(10**6, n, replace=False).astype(np.int64)
            for share in (0.0, 0.01):
                if share and not opted:
                    continue
                among = ids[: max(1, int(n * share))] if share else ids[:0]
                view = OptedOut(np.union1d(held, among))
                us = _best(lambda: view.mask(ids), 2_000 if n < 10_000 else 200)
                rows.append({"opted_out": opted, "ids": n, "share_opted_out": share, "us": us})
    return rows
