"""A kill -9 loses at most the last flush interval of acknowledged decisions.

A router runs in a subprocess and prints each decision's batch id and the time its
``decide`` returned (acknowledged); the test kills it with SIGKILL mid-stream, then reads
the log: every decision acknowledged more than one flush interval (plus a margin for a
loaded machine) before the kill must be there. Caps are off, so no decision waits for
its commit: the worst case for what a crash can lose.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from typing import Any

import pytest

from serving.settings import BanditSettings
from tests.bandit.conftest import logged_batches

FLUSH_S = 0.05
MARGIN_S = 0.15

CHILD = """
import asyncio, json, sys, time
import numpy as np
from serving.bandit.router import BanditRouter
from serving.settings import BanditSettings

router = BanditRouter(BanditSettings(**json.loads(sys.argv[1])))

async def main():
    x, ok = np.zeros((1, 2), np.float32), np.ones(1, bool)
    for i in range(10**9):
        d = await router.decide(np.array([i]), x, eligible=ok, model_versions={})
        sys.stdout.write(f"{d.batch_id} {time.time()!r}\\n")
        sys.stdout.flush()
        if i % 10 == 0:
            await asyncio.sleep(0.001)

asyncio.run(main())
"""


def run_and_kill(
    settings: dict[str, Any], run_s: float = 1.5
) -> tuple[list[tuple[str, float]], float]:
    """(batch id, acknowledged at) of every decision the child printed, and the kill time."""
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, json.dumps(settings)], stdout=subprocess.PIPE, text=True
    )
    acks: list[tuple[str, float]] = []

    def read() -> None:
        for line in proc.stdout:  # type: ignore[union-attr]
            bid, t = line.split()
            acks.append((bid, float(t)))

    reader = threading.Thread(target=read)
    reader.start()
    deadline = time.monotonic() + 60
    while (not acks or acks[-1][1] - acks[0][1] < run_s) and time.monotonic() < deadline:
        assert proc.poll() is None, "the router process died on its own"
        time.sleep(0.05)
    killed_at = time.time()
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    reader.join(timeout=30)
    return acks, killed_at


@pytest.mark.parametrize("backend", ["embedded", "redis"])
def test_kill_9_loses_at_most_the_last_flush_interval(
    backend: str, tmp_path: Any, request: pytest.FixtureRequest
) -> None:
    settings: dict[str, Any] = {
        "state_path": str(tmp_path),
        "holdout_share": 0.0,
        "contact_cap": 0,
        "flush_interval_s": FLUSH_S,
        "seed": 0,
    }
    if backend == "redis":
        settings.update(backend="redis", redis_url=request.getfixturevalue("redis_url"))
    acks, killed_at = run_and_kill(settings)
    logged = set(logged_batches(BanditSettings(**settings)))
    old_enough = [bid for bid, t in acks if t < killed_at - FLUSH_S - MARGIN_S]
    assert len(old_enough) > 100
    assert [bid for bid in old_enough if bid not in logged] == []
    lost = [killed_at - t for bid, t in acks if bid not in logged]
    print(
        f"{backend}: {len(acks)} acknowledged, {len(lost)} lost, acknowledged at most "
        f"{max(lost, default=0) * 1e3:.0f} ms before the kill"
    )
